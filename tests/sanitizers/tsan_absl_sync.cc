// ThreadSanitizer builds only (TIERSERVE_SANITIZE=thread links this into every
// executable, with -rdynamic): makes Debian's abseil locks visible to
// ThreadSanitizer.
//
// Debian builds abseil without ThreadSanitizer, so the locking inside
// libabsl_synchronization is invisible to it: every field an absl::Mutex
// guards, in tierserve and in gRPC (a grpc_core::Mutex is an absl::Mutex),
// would look raced, and an absl::Notification would order nothing. Built with
// ThreadSanitizer, abseil tells it what each operation does through the
// __tsan_mutex_* annotations of <sanitizer/tsan_interface.h>; the definitions
// below make the same annotations around the library's code. They are
// definitions of the library's own entry points, in the executable, which comes
// first in symbol lookup: every caller in the process (tierserve, gRPC, the
// library itself through its PLT) reaches them, and each calls the library's
// definition, found with dlsym(RTLD_NEXT).
//
// Between pre_lock and post_lock (and pre_unlock and post_unlock)
// ThreadSanitizer ignores memory accesses, as abseil's own annotations do: a
// Condition is evaluated there, on whichever thread abseil chooses.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#define TIERSERVE_STR2(x) #x
#define TIERSERVE_STR(x) TIERSERVE_STR2(x)

namespace {

// The library's definition of the member whose mangled name is
// _ZN[K]4absl<len><inline namespace><suffix>; aborts when it is missing (an
// abseil whose entry points differ from these: update this file).
void* Real(const char* suffix, bool is_const = false) {
  static constexpr char kNamespace[] = TIERSERVE_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  char name[256];
  std::snprintf(name, sizeof name, "%s4absl%zu%s%s", is_const ? "_ZNK" : "_ZN",
                sizeof kNamespace - 1, kNamespace, suffix);
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s is not in the loaded abseil\n", name);
    std::abort();
  }
  return f;
}

// Nesting of the Mutex and CondVar entry points on this thread: the
// library's own *WithTimeout ones call its *WithDeadline ones through the PLT,
// which land here again; only the outermost call annotates.
thread_local int depth = 0;
struct Outermost {
  Outermost() : outer(depth++ == 0) {}
  ~Outermost() { --depth; }
  Outermost(const Outermost&) = delete;
  Outermost& operator=(const Outermost&) = delete;
  const bool outer;
};

// The abseil lock word's writer bit (kMuWriter in abseil's mutex.cc): whether
// a held mutex is held exclusively, as abseil itself decides for Await.
constexpr intptr_t kMuWriter = 0x0008;

}  // namespace

#define TIERSERVE_REAL(type, ...) \
  static const auto real = reinterpret_cast<type>(Real(__VA_ARGS__))

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  TIERSERVE_REAL(void (*)(Mutex*), "5MutexD2Ev");
  __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::Lock() {
  TIERSERVE_REAL(void (*)(Mutex*), "5Mutex4LockEv");
  const Outermost nesting;
  if (!nesting.outer) return real(this);
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  TIERSERVE_REAL(void (*)(Mutex*), "5Mutex10ReaderLockEv");
  const Outermost nesting;
  if (!nesting.outer) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

bool Mutex::TryLock() {
  TIERSERVE_REAL(bool (*)(Mutex*), "5Mutex7TryLockEv");
  const Outermost nesting;
  if (!nesting.outer) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  TIERSERVE_REAL(bool (*)(Mutex*), "5Mutex13ReaderTryLockEv");
  const Outermost nesting;
  if (!nesting.outer) return real(this);
  const unsigned flags = __tsan_mutex_read_lock | __tsan_mutex_try_lock;
  __tsan_mutex_pre_lock(this, flags);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, flags | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

void Mutex::Unlock() {
  TIERSERVE_REAL(void (*)(Mutex*), "5Mutex6UnlockEv");
  const Outermost nesting;
  if (!nesting.outer) return real(this);
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  TIERSERVE_REAL(void (*)(Mutex*), "5Mutex12ReaderUnlockEv");
  const Outermost nesting;
  if (!nesting.outer) return real(this);
  __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

// LockWhen*: a lock that returns held, whatever the condition.
void Mutex::LockWhen(const Condition& cond) {
  TIERSERVE_REAL(void (*)(Mutex*, const Condition&), "5Mutex8LockWhenERKNS0_9ConditionE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond);
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  TIERSERVE_REAL(bool (*)(Mutex*, const Condition&, Duration),
                 "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  TIERSERVE_REAL(bool (*)(Mutex*, const Condition&, Time),
                 "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond, deadline);
  __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  TIERSERVE_REAL(void (*)(Mutex*, const Condition&), "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this, cond);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  TIERSERVE_REAL(bool (*)(Mutex*, const Condition&, Duration),
                 "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  const bool met = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  TIERSERVE_REAL(bool (*)(Mutex*, const Condition&, Time),
                 "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond, deadline);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  const bool met = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  return met;
}

// Await*: the held mutex is released while waiting and held again on return.
void Mutex::Await(const Condition& cond) {
  TIERSERVE_REAL(void (*)(Mutex*, const Condition&), "5Mutex5AwaitERKNS0_9ConditionE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond);
  const unsigned flags = (mu_.load(std::memory_order_relaxed) & kMuWriter) ? 0 : __tsan_mutex_read_lock;
  __tsan_mutex_pre_unlock(this, flags);
  __tsan_mutex_post_unlock(this, flags);
  __tsan_mutex_pre_lock(this, flags);
  real(this, cond);
  __tsan_mutex_post_lock(this, flags, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  TIERSERVE_REAL(bool (*)(Mutex*, const Condition&, Duration),
                 "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond, timeout);
  const unsigned flags = (mu_.load(std::memory_order_relaxed) & kMuWriter) ? 0 : __tsan_mutex_read_lock;
  __tsan_mutex_pre_unlock(this, flags);
  __tsan_mutex_post_unlock(this, flags);
  __tsan_mutex_pre_lock(this, flags);
  const bool met = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, flags, 0);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  TIERSERVE_REAL(bool (*)(Mutex*, const Condition&, Time),
                 "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, cond, deadline);
  const unsigned flags = (mu_.load(std::memory_order_relaxed) & kMuWriter) ? 0 : __tsan_mutex_read_lock;
  __tsan_mutex_pre_unlock(this, flags);
  __tsan_mutex_post_unlock(this, flags);
  __tsan_mutex_pre_lock(this, flags);
  const bool met = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, flags, 0);
  return met;
}

// CondVar::Wait*: `mu` is released while waiting and held again on return.
void CondVar::Wait(Mutex* mu) {
  TIERSERVE_REAL(void (*)(CondVar*, Mutex*), "7CondVar4WaitEPNS0_5MutexE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, mu);
  const unsigned flags = (mu->mu_.load(std::memory_order_relaxed) & kMuWriter) ? 0 : __tsan_mutex_read_lock;
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
  real(this, mu);
  __tsan_mutex_post_lock(mu, flags, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  TIERSERVE_REAL(bool (*)(CondVar*, Mutex*, Duration),
                 "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, mu, timeout);
  const unsigned flags = (mu->mu_.load(std::memory_order_relaxed) & kMuWriter) ? 0 : __tsan_mutex_read_lock;
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
  const bool timed_out = real(this, mu, timeout);
  __tsan_mutex_post_lock(mu, flags, 0);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  TIERSERVE_REAL(bool (*)(CondVar*, Mutex*, Time), "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  const Outermost nesting;
  if (!nesting.outer) return real(this, mu, deadline);
  const unsigned flags = (mu->mu_.load(std::memory_order_relaxed) & kMuWriter) ? 0 : __tsan_mutex_read_lock;
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
  const bool timed_out = real(this, mu, deadline);
  __tsan_mutex_post_lock(mu, flags, 0);
  return timed_out;
}

// Notification: a waiter that finds it notified reads the flag without the
// lock, so the notifier releases and the waiter acquires the notification.
void Notification::Notify() {
  TIERSERVE_REAL(void (*)(Notification*), "12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  TIERSERVE_REAL(void (*)(const Notification*), "12Notification19WaitForNotificationEv", true);
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  TIERSERVE_REAL(bool (*)(const Notification*, Duration),
                 "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", true);
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  TIERSERVE_REAL(bool (*)(const Notification*, Time),
                 "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", true);
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
