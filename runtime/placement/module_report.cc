#include "runtime/placement/module_report.h"

#include <map>
#include <optional>
#include <memory>
#include <tuple>
#include <variant>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tierserve {
namespace {

// A path tree: each node is a module-path prefix; leaves carry records.
struct Node {
  std::string path;
  std::vector<std::unique_ptr<Node>> children;  // in first-appearance order
  std::map<std::string, Node*, std::less<>> by_name;
  std::optional<ModuleRecord> leaf;
  // Every record under the node shares device and precision; then `sum`
  // holds them with summed sizes.
  bool uniform = true;
  ModuleRecord sum;
};

void Insert(Node* root, const ModuleRecord& r) {
  Node* n = root;
  for (absl::string_view part : absl::StrSplit(r.module, '.')) {
    auto it = n->by_name.find(part);
    if (it == n->by_name.end()) {
      auto child = std::make_unique<Node>();
      child->path = n->path.empty() ? std::string(part) : absl::StrCat(n->path, ".", part);
      it = n->by_name.emplace(std::string(part), child.get()).first;
      n->children.push_back(std::move(child));
    }
    n = it->second;
  }
  if (n->leaf.has_value()) {  // the same module twice (weight and bias records)
    n->leaf->parameters += r.parameters;
    n->leaf->bytes += r.bytes;
  } else {
    n->leaf = r;
  }
}

// Fills uniform and sum bottom-up.
void Summarize(Node* n) {
  bool first = true;
  auto add = [&](const ModuleRecord& r) {
    if (first) {
      n->sum = r;
      n->sum.module = n->path;
      first = false;
      return;
    }
    if (r.device != n->sum.device || r.precision != n->sum.precision) n->uniform = false;
    n->sum.parameters += r.parameters;
    n->sum.bytes += r.bytes;
  };
  if (n->leaf.has_value()) add(*n->leaf);
  for (auto& c : n->children) {
    Summarize(c.get());
    if (!c->uniform) n->uniform = false;
    add(c->sum);
  }
}

// The highest uniform nodes, in order.
void Collect(const Node& n, std::vector<ModuleRecord>* out) {
  if (n.uniform && !n.path.empty()) {
    out->push_back(n.sum);
    return;
  }
  if (n.leaf.has_value()) out->push_back(*n.leaf);
  for (const auto& c : n.children) Collect(*c, out);
}

// Splits `a.b.7.c` into ("a.b", 7, "c") at its first all-digit part.
bool SplitIndex(const std::string& path, std::string* head, int64_t* index, std::string* tail) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i].empty() && absl::SimpleAtoi(parts[i], index) &&
        parts[i].find_first_not_of("0123456789") == std::string::npos) {
      *head = absl::StrJoin(parts.begin(), parts.begin() + i, ".");
      *tail = absl::StrJoin(parts.begin() + i + 1, parts.end(), ".");
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<ModuleRecord> GroupModules(const std::vector<ModuleRecord>& records) {
  Node root;
  for (const ModuleRecord& r : records) Insert(&root, r);
  Summarize(&root);
  std::vector<ModuleRecord> folded;
  Collect(root, &folded);

  // Fold runs of consecutive indices that share head, tail, device and precision.
  struct Run {
    std::string head, tail;
    int64_t lo, hi;
    ModuleRecord sum;
  };
  std::vector<Run> runs;
  std::vector<std::variant<size_t, ModuleRecord>> order;  // a run index or a plain record
  std::map<std::tuple<std::string, std::string, std::string, Precision>, size_t> open;
  for (const ModuleRecord& r : folded) {
    std::string head, tail;
    int64_t index = 0;
    if (!SplitIndex(r.module, &head, &index, &tail)) {
      order.emplace_back(r);
      continue;
    }
    const auto key = std::make_tuple(head, tail, r.device, r.precision);
    if (auto it = open.find(key); it != open.end() && runs[it->second].hi + 1 == index) {
      Run& run = runs[it->second];
      run.hi = index;
      run.sum.parameters += r.parameters;
      run.sum.bytes += r.bytes;
      continue;
    }
    open[key] = runs.size();
    order.emplace_back(runs.size());
    runs.push_back(Run{head, tail, index, index, r});
  }
  std::vector<ModuleRecord> out;
  for (const auto& o : order) {
    if (const ModuleRecord* r = std::get_if<ModuleRecord>(&o)) {
      out.push_back(*r);
      continue;
    }
    const Run& run = runs[std::get<size_t>(o)];
    ModuleRecord r = run.sum;
    r.module = absl::StrCat(run.head, run.head.empty() ? "" : ".",
                            run.lo == run.hi ? absl::StrCat(run.lo) : absl::StrCat(run.lo, "-", run.hi),
                            run.tail.empty() ? "" : ".", run.tail);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<MemoryLine> MemoryByPrecision(const std::vector<ModuleRecord>& records) {
  std::map<std::pair<std::string, Precision>, MemoryLine> lines;
  for (const ModuleRecord& r : records) {
    MemoryLine& l = lines[{r.device, r.precision}];
    l.device = r.device;
    l.precision = r.precision;
    l.parameters += r.parameters;
    l.bytes += r.bytes;
  }
  std::vector<MemoryLine> out;
  for (auto& [key, line] : lines) out.push_back(line);
  return out;
}

}  // namespace tierserve
