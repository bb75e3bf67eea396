// The sending side of one streaming gRPC call (tierserve.v1 GenerateStream,
// inference ModelStreamInfer) and the requests it answers. Messages are
// queued from the engines' threads and written one at a time, in order; the
// call finishes once its input has ended (no more requests will come), every
// request it started has ended, and every queued message is written.
//
// Slow readers: output the client has not read is bounded by `max_unread`.
// Past it Ready() is false — the call's jobs pause (keeping their place in
// the batch and their KV blocks) and a bidirectional call reads no further
// request — until the client reads; then the engines are woken. A slow
// reader costs bounded memory and never slows the other requests. A request
// that ends while output is still queued counts on its engine as undelivered
// (Engine::AddUndelivered, against max_queued) until the queue is written or
// dropped, so unread output is bounded in total too.
//
// Ownership: shared (std::shared_ptr) by the call's reactor and the jobs
// writing to it, so it outlives whichever ends last. The reactor is the
// Call; it detaches in OnDone, and no Call method runs after that. The call
// finishes only after every request has ended, so a job may use the call's
// ServerContext until it ends.
// Thread-safety: thread-safe. The Call's methods are called with the lock
// held: they may start gRPC operations but must not call into this object.
#ifndef TIERSERVE_SERVER_STREAM_OUTPUT_H_
#define TIERSERVE_SERVER_STREAM_OUTPUT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/engine/engine.h"

namespace tierserve {

class StreamOutput {
 public:
  // The reactor's side.
  class Call {
   public:
    virtual ~Call() = default;
    virtual void StartWrite(const grpc::ByteBuffer* message) = 0;
    // Reads the next request (bidirectional calls; see ReadNext).
    virtual void StartRead() {}
    // Ends the call with `status`.
    virtual void Finish(const grpc::Status& status) = 0;
  };

  StreamOutput(Call* call, size_t max_unread) : call_(call), max_unread_(max_unread) {}
  StreamOutput(const StreamOutput&) = delete;
  StreamOutput& operator=(const StreamOutput&) = delete;

  // An engine this call's jobs run on: woken when the output falls below the
  // bound again or the call is cancelled, so that a paused job goes on (or
  // ends) at once rather than at its next poll.
  void AddEngine(Engine* engine);

  // Queues a message; dropped once the call is cancelled or over.
  void Send(grpc::ByteBuffer message);
  // Whether the client has read enough of the output for generation to go on.
  bool Ready() const;
  // True once the client cancelled the call or stopped reading (a write failed).
  bool cancelled() const { return cancelled_.load(); }

  // A request of the call starts; false (and nothing is counted) when the
  // call is cancelled. Each request started ends with RequestEnded once its
  // last message is queued; `engine` ran it (null if none).
  bool RequestStarted();
  void RequestEnded(Engine* engine);
  // The status the call finishes with: the first non-OK one set, else OK.
  void SetStatus(const grpc::Status& status);
  // No more requests will start: the call finishes once those in flight have
  // ended and the output is written.
  void EndInput();
  // Bidirectional calls, after each request read: reads the next one now, or
  // once the output falls below the bound; ends the input if cancelled.
  void ReadNext();

  // The reactor's reactions.
  void OnWriteDone(bool ok);
  void OnCancel();
  void Detach();

 private:
  // Finishes the call when nothing is left to do.
  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The requests counted undelivered are delivered (or dropped).
  void ReleaseUndelivered() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  Call* call_ ABSL_GUARDED_BY(mu_);  // null once detached
  const size_t max_unread_;
  std::deque<grpc::ByteBuffer> pending_ ABSL_GUARDED_BY(mu_);  // serialized; front is being written
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool input_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::vector<Engine*> engines_ ABSL_GUARDED_BY(mu_);
  std::vector<Engine*> undelivered_ ABSL_GUARDED_BY(mu_);  // one entry per request counted
  std::atomic<bool> cancelled_{false};
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_STREAM_OUTPUT_H_
