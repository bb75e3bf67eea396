#include "runtime/placement/plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/aligned_bytes.h"
#include "runtime/base/byte_size.h"

namespace tierserve {
namespace {

// Accelerators first (by tier, then index), then cpu, then disk.
int TierRank(Location::Tier t) {
  switch (t) {
    case Location::Tier::kCuda:
      return 0;
    case Location::Tier::kSim:
      return 1;
    case Location::Tier::kCpu:
      return 2;
    case Location::Tier::kDisk:
      return 3;
  }
  return 4;
}

bool Before(const Location& a, const Location& b) {
  if (TierRank(a.tier) != TierRank(b.tier)) return TierRank(a.tier) < TierRank(b.tier);
  return a.index < b.index;
}

bool IsAccelerator(const Location& l) {
  return l.tier == Location::Tier::kCuda || l.tier == Location::Tier::kSim;
}

const Location kCpu{Location::Tier::kCpu, 0};
const Location kDisk{Location::Tier::kDisk, 0};

// The KV bytes of decoder layer `i` of `layers`: an even split whose parts
// sum to `kv_bytes` exactly.
int64_t KvShare(int64_t kv_bytes, int64_t i, int64_t layers) {
  if (layers == 0) return 0;
  return kv_bytes * (i + 1) / layers - kv_bytes * i / layers;
}

int64_t Headroom(int64_t budget, double fraction) {
  return static_cast<int64_t>(std::ceil(static_cast<double>(budget) * fraction));
}

// "stem.N" -> (stem, N); false for any other name.
bool SplitIndex(const std::string& name, std::string* stem, int64_t* index) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  *stem = name.substr(0, dot);
  return absl::SimpleAtoi(name.substr(dot + 1), index) &&
         std::to_string(*index) == name.substr(dot + 1);
}

std::string Describe(const DeviceUsage& u) {
  return absl::StrCat(u.device.ToString(), " needs ", FormatBytes(u.total()), " (weights ",
                      FormatBytes(u.weights), ", KV cache ", FormatBytes(u.kv), ", staging ",
                      FormatBytes(u.staging), ", headroom ", FormatBytes(u.headroom), ")");
}

}  // namespace

std::vector<GroupSize> GroupSizes(const std::vector<ModuleSize>& modules) {
  std::vector<GroupSize> groups;
  std::map<std::string, size_t> index;
  for (const ModuleSize& m : modules) {
    if (m.host_only) continue;
    auto [it, inserted] = index.emplace(m.group, groups.size());
    if (inserted) groups.push_back(GroupSize{m.group, m.layer, 0, 0, 0});
    GroupSize& g = groups[it->second];
    g.resident_bytes += m.resident_bytes;
    g.offloaded_bytes += m.offloaded_bytes;
    g.staged_bytes = (inserted ? 0 : AlignUp(g.staged_bytes)) + m.offloaded_bytes;
  }
  return groups;
}

const DeviceUsage* PlacementReport::Find(const Location& device) const {
  for (const DeviceUsage& u : devices)
    if (u.device == device) return &u;
  return nullptr;
}

DeviceMap PlacementReport::ToDeviceMap(std::string source, std::string key_path) const {
  DeviceMap map(std::move(source), std::move(key_path));
  // Whatever no group covers (fp32 vectors outside the layers) rests on the
  // cpu; groups are longer prefixes, so they win.
  (void)map.AddKey("", Placement{kCpu, std::nullopt});
  // Runs of numbered groups on one device become one range key.
  for (size_t i = 0; i < groups.size();) {
    std::string stem, next_stem;
    int64_t lo = 0, next = 0;
    size_t j = i + 1;
    if (SplitIndex(groups[i].first, &stem, &lo)) {
      while (j < groups.size() && groups[j].second == groups[i].second &&
             SplitIndex(groups[j].first, &next_stem, &next) && next_stem == stem &&
             next == lo + static_cast<int64_t>(j - i)) {
        ++j;
      }
    }
    const std::string key = j - i > 1 ? absl::StrCat(stem, ".", lo, "-", lo + (j - i) - 1)
                                      : groups[i].first;
    (void)map.AddKey(key, Placement{groups[i].second, std::nullopt});
    i = j;
  }
  return map;
}

std::string PlacementReport::Overflow() const {
  for (const DeviceUsage& u : devices) {
    if (u.budget.has_value() && u.total() > *u.budget) {
      return absl::StrCat(Describe(u), " but its budget is ", FormatBytes(*u.budget), ", ",
                          FormatBytes(u.total() - *u.budget), " over");
    }
  }
  return "";
}

PlacementReport MeasurePlacement(const std::vector<ModuleSize>& modules,
                                 const std::vector<Location>& group_locations,
                                 const Location& execution, const Budgets& budgets) {
  PlacementReport r;
  r.execution = execution;
  r.kv_bytes = budgets.kv_bytes;
  std::map<std::pair<int, int>, DeviceUsage> by_device;  // ordered as the report lists them
  auto usage = [&](const Location& d) -> DeviceUsage& {
    DeviceUsage& u = by_device[{TierRank(d.tier), d.index}];
    u.device = d;
    return u;
  };
  for (const auto& [device, budget] : budgets.accelerators) usage(device).budget = budget;
  DeviceUsage& host = usage(kCpu);
  host.budget = budgets.cpu;

  const bool host_executes = execution.tier == Location::Tier::kCpu;
  const std::vector<GroupSize> groups = GroupSizes(modules);
  int64_t layers = 0;
  for (const GroupSize& g : groups) layers += g.layer ? 1 : 0;
  for (const ModuleSize& m : modules) {
    if (m.host_only) host.weights += m.resident_bytes;
  }
  int64_t largest_offloaded = 0, layer = 0;
  bool disk = false;
  for (size_t i = 0; i < groups.size(); ++i) {
    const GroupSize& g = groups[i];
    const Location& where = group_locations[i];
    r.groups.emplace_back(g.name, where);
    DeviceUsage& u = usage(where);
    ++u.groups;
    const bool offloaded = where.tier == Location::Tier::kDisk ||
                           (where.tier == Location::Tier::kCpu && !host_executes);
    u.weights += where.tier == Location::Tier::kDisk ? g.staged_bytes
                 : offloaded                          ? g.offloaded_bytes
                                                      : g.resident_bytes;
    if (offloaded) largest_offloaded = std::max(largest_offloaded, g.staged_bytes);
    disk |= where.tier == Location::Tier::kDisk;
    if (g.layer) {
      // A layer's keys and values live where it is computed.
      usage(IsAccelerator(where) ? where : execution).kv += KvShare(budgets.kv_bytes, layer++, layers);
    }
  }
  if (layers == 0) usage(execution).kv += budgets.kv_bytes;
  if (largest_offloaded > 0) {
    usage(execution).staging += budgets.staging_slots * largest_offloaded;
    if (disk && !host_executes) host.staging += budgets.staging_slots * largest_offloaded;
  }
  for (auto& [key, u] : by_device) {
    if (u.budget.has_value()) u.headroom = Headroom(*u.budget, budgets.headroom);
    r.devices.push_back(u);
  }
  return r;
}

absl::StatusOr<PlacementReport> PlanPlacement(const std::vector<ModuleSize>& modules,
                                              PlanStrategy strategy, const Budgets& budgets) {
  const std::vector<GroupSize> groups = GroupSizes(modules);
  const size_t n = groups.size();
  std::vector<std::pair<Location, int64_t>> accelerators = budgets.accelerators;
  std::sort(accelerators.begin(), accelerators.end(),
            [](const auto& a, const auto& b) { return Before(a.first, b.first); });
  const Location execution = accelerators.empty() ? kCpu : accelerators.front().first;
  const bool host_executes = accelerators.empty();

  int64_t layers = 0;
  for (const GroupSize& g : groups) layers += g.layer ? 1 : 0;
  std::vector<int64_t> kv(n, 0);  // each group's KV share
  for (size_t i = 0, l = 0; i < n; ++i) {
    if (groups[i].layer) kv[i] = KvShare(budgets.kv_bytes, static_cast<int64_t>(l++), layers);
  }
  int64_t host_only = 0;
  for (const ModuleSize& m : modules) host_only += m.host_only ? m.resident_bytes : 0;
  auto usable = [&](int64_t budget) { return budget - Headroom(budget, budgets.headroom); };

  // What each accelerator may hold: its budget, or for `balanced`, an even
  // share of what they are to hold plus the largest group.
  std::vector<int64_t> room;
  for (const auto& [device, budget] : accelerators) room.push_back(usable(budget));
  if (strategy != PlanStrategy::kSequential && accelerators.size() > 1) {
    int64_t need = 0, largest = 0;
    for (size_t i = 0; i < n; ++i) {
      need += groups[i].resident_bytes + kv[i];
      largest = std::max(largest, groups[i].resident_bytes + kv[i]);
    }
    const int64_t share = need / static_cast<int64_t>(accelerators.size()) + largest;
    for (size_t a = 0; a + 1 < room.size(); ++a) room[a] = std::min(room[a], share);
  }

  // Offloading a group costs the execution device its KV share and staging,
  // and disk costs the host staging: assume nothing is offloaded, place, and
  // place again with what that placement offloads reserved, until the set
  // stops growing (it only grows, so this ends).
  std::vector<Location> where(n);
  size_t first_off = n, first_disk = n;
  for (size_t round = 0; round <= n + 1; ++round) {
    int64_t largest_offloaded = 0, offloaded_kv = 0;
    for (size_t i = first_off; i < n; ++i) {
      largest_offloaded = std::max(largest_offloaded, groups[i].staged_bytes);
      offloaded_kv += kv[i];
    }
    size_t g = 0;
    for (size_t a = 0; a < accelerators.size(); ++a) {
      int64_t left = room[a];
      if (a == 0) left -= offloaded_kv + (first_off < n ? budgets.staging_slots * largest_offloaded : 0);
      while (g < n && groups[g].resident_bytes + kv[g] <= left) {
        left -= groups[g].resident_bytes + kv[g];
        where[g++] = accelerators[a].first;
      }
    }
    const size_t off = g;
    int64_t left = std::numeric_limits<int64_t>::max();
    if (budgets.cpu.has_value()) {
      int64_t largest_disk = 0;
      for (size_t i = host_executes ? first_disk : first_off; i < n; ++i) {
        largest_disk = std::max(largest_disk, groups[i].staged_bytes);
      }
      left = usable(*budgets.cpu) - host_only - (host_executes ? budgets.kv_bytes : 0) -
             (first_disk < n ? budgets.staging_slots * largest_disk : 0);
    }
    auto cpu_cost = [&](size_t i) {
      return host_executes ? groups[i].resident_bytes : groups[i].offloaded_bytes;
    };
    while (g < n && cpu_cost(g) <= left) {
      left -= cpu_cost(g);
      where[g++] = kCpu;
    }
    const size_t on_disk = g;
    for (; g < n; ++g) where[g] = kDisk;
    if (off == first_off && on_disk == first_disk) break;
    first_off = std::min(first_off, off);
    first_disk = std::min(first_disk, on_disk);
  }

  PlacementReport report = MeasurePlacement(modules, where, execution, budgets);
  if (!host_executes && n > 0 && !IsAccelerator(where[0])) {
    const DeviceUsage& e = *report.Find(execution);
    return absl::ResourceExhaustedError(absl::StrCat(
        "nothing fits on ", execution.ToString(), ": its budget of ", FormatBytes(*e.budget),
        " less headroom ", FormatBytes(e.headroom), " cannot hold ", groups[0].name, " (",
        FormatBytes(groups[0].resident_bytes), ") beside the KV cache (", FormatBytes(e.kv),
        ") and staging (", FormatBytes(e.staging), ") it would serve"));
  }
  if (first_disk < n && !budgets.disk) {
    const DeviceUsage& h = *report.Find(kCpu);
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model does not fit: ", n - first_disk, " of its ", n, " groups (from ",
        groups[first_disk].name, ") would go to disk, and there is no offload folder; the cpu's "
        "budget of ", FormatBytes(*h.budget), " holds ", h.groups, " groups beside ",
        FormatBytes(host_only + h.kv + h.staging + h.headroom),
        " of fp32 vectors, KV cache, staging and headroom"));
  }
  if (std::string over = report.Overflow(); !over.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat("the model does not fit: ", over));
  }
  return report;
}

}  // namespace tierserve
