#include "server/stream_output.h"

#include <algorithm>
#include <utility>

namespace tierserve {

void StreamOutput::AddEngine(Engine* engine) {
  absl::MutexLock lock(&mu_);
  if (std::find(engines_.begin(), engines_.end(), engine) == engines_.end()) engines_.push_back(engine);
}

void StreamOutput::Send(grpc::ByteBuffer message) {
  absl::MutexLock lock(&mu_);
  if (call_ == nullptr || finished_ || cancelled_) return;
  pending_bytes_ += message.Length();
  pending_.push_back(std::move(message));  // a deque keeps the front (being written) in place
  if (!writing_) {
    writing_ = true;
    call_->StartWrite(&pending_.front());
  }
}

bool StreamOutput::Ready() const {
  absl::MutexLock lock(&mu_);
  return pending_bytes_ < max_unread_;
}

bool StreamOutput::RequestStarted() {
  absl::MutexLock lock(&mu_);
  if (cancelled_ || finished_) return false;
  ++in_flight_;
  return true;
}

void StreamOutput::RequestEnded(Engine* engine) {
  absl::MutexLock lock(&mu_);
  --in_flight_;
  if (engine != nullptr && !pending_.empty() && call_ != nullptr) {
    engine->AddUndelivered(1);
    undelivered_.push_back(engine);
  }
  MaybeFinish();
}

void StreamOutput::SetStatus(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (status_.ok()) status_ = status;
}

void StreamOutput::EndInput() {
  absl::MutexLock lock(&mu_);
  input_ended_ = true;
  MaybeFinish();
}

void StreamOutput::ReadNext() {
  absl::MutexLock lock(&mu_);
  if (input_ended_ || call_ == nullptr) return;
  if (cancelled_) {
    input_ended_ = true;
    MaybeFinish();
  } else if (pending_bytes_ < max_unread_) {
    call_->StartRead();
  } else {
    read_paused_ = true;
  }
}

void StreamOutput::OnWriteDone(bool ok) {
  std::vector<Engine*> wake;
  {
    absl::MutexLock lock(&mu_);
    const bool was_full = pending_bytes_ >= max_unread_;
    pending_bytes_ -= pending_.front().Length();
    pending_.pop_front();
    if (!ok) {
      // The client is gone: drop the rest; the jobs see `cancelled`.
      cancelled_ = true;
      pending_.clear();
      pending_bytes_ = 0;
    }
    if (pending_.empty()) ReleaseUndelivered();
    if (!ok || (was_full && pending_bytes_ < max_unread_)) {
      wake = engines_;
      if (read_paused_) {
        read_paused_ = false;
        if (ok) {
          call_->StartRead();
        } else {
          input_ended_ = true;
        }
      }
    }
    if (!pending_.empty()) {
      call_->StartWrite(&pending_.front());
    } else {
      writing_ = false;
      MaybeFinish();
    }
  }
  for (Engine* e : wake) e->Wake();
}

void StreamOutput::OnCancel() {
  cancelled_ = true;
  std::vector<Engine*> wake;
  {
    absl::MutexLock lock(&mu_);
    wake = engines_;
    if (read_paused_) {
      read_paused_ = false;
      input_ended_ = true;
      MaybeFinish();
    }
  }
  for (Engine* e : wake) e->Wake();  // a paused sequence ends now, not at its next poll
}

void StreamOutput::Detach() {
  absl::MutexLock lock(&mu_);
  call_ = nullptr;
  cancelled_ = true;
  pending_.clear();
  pending_bytes_ = 0;
  ReleaseUndelivered();
}

void StreamOutput::MaybeFinish() {
  if (call_ == nullptr || finished_ || !input_ended_ || in_flight_ > 0 || writing_) return;
  finished_ = true;
  ReleaseUndelivered();
  call_->Finish(status_);
}

void StreamOutput::ReleaseUndelivered() {
  for (Engine* e : undelivered_) e->AddUndelivered(-1);
  undelivered_.clear();
}

}  // namespace tierserve
