#include "server/stream_output.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::ElementsAre;

// Records what the output asks of the call; writes complete when the test says.
class FakeCall : public StreamOutput::Call {
 public:
  void StartWrite(const grpc::ByteBuffer* message) override {
    std::vector<grpc::Slice> slices;
    (void)message->Dump(&slices);
    std::string bytes;
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    events.push_back("write " + bytes);
  }
  void StartRead() override { events.push_back("read"); }
  void Finish(const grpc::Status& status) override {
    events.push_back("finish " + std::to_string(status.error_code()));
  }
  std::vector<std::string> events;
};

grpc::ByteBuffer Message(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

TEST(StreamOutput, WritesOneAtATimeInOrderThenFinishesWhenAllIsDone) {
  FakeCall call;
  StreamOutput out(&call, 1 << 20);
  ASSERT_TRUE(out.RequestStarted());
  out.EndInput();
  out.Send(Message("a"));
  out.Send(Message("b"));
  EXPECT_THAT(call.events, ElementsAre("write a"));  // one write outstanding
  out.OnWriteDone(true);
  EXPECT_THAT(call.events, ElementsAre("write a", "write b"));
  out.RequestEnded(nullptr);  // the request is over, but "b" is still being written
  EXPECT_EQ(call.events.size(), 2u);
  out.OnWriteDone(true);
  EXPECT_THAT(call.events, ElementsAre("write a", "write b", "finish 0"));
  out.Send(Message("late"));  // after the finish: dropped
  EXPECT_EQ(call.events.size(), 3u);
}

TEST(StreamOutput, WaitsForEveryRequestAndTheInput) {
  FakeCall call;
  StreamOutput out(&call, 1 << 20);
  ASSERT_TRUE(out.RequestStarted());
  ASSERT_TRUE(out.RequestStarted());
  out.RequestEnded(nullptr);
  out.EndInput();
  EXPECT_TRUE(call.events.empty());  // one request still runs
  out.RequestEnded(nullptr);
  EXPECT_THAT(call.events, ElementsAre("finish 0"));
}

TEST(StreamOutput, TheFirstErrorIsTheStatus) {
  FakeCall call;
  StreamOutput out(&call, 1 << 20);
  out.SetStatus(grpc::Status::OK);
  out.SetStatus(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "full"));
  out.SetStatus(grpc::Status(grpc::StatusCode::INTERNAL, "later"));
  out.EndInput();
  EXPECT_THAT(call.events, ElementsAre("finish 8"));
}

TEST(StreamOutput, ReadyUntilTheUnreadOutputReachesTheBound) {
  FakeCall call;
  StreamOutput out(&call, 10);
  ASSERT_TRUE(out.RequestStarted());
  out.Send(Message("12345"));
  EXPECT_TRUE(out.Ready());  // 5 < 10
  out.Send(Message("67890"));
  EXPECT_FALSE(out.Ready());  // 10 unread
  out.OnWriteDone(true);
  EXPECT_TRUE(out.Ready());
}

TEST(StreamOutput, ReadingWaitsWhileTheClientLeavesOutputUnread) {
  FakeCall call;
  StreamOutput out(&call, 4);
  out.ReadNext();
  EXPECT_THAT(call.events, ElementsAre("read"));
  ASSERT_TRUE(out.RequestStarted());
  out.Send(Message("abcd"));
  call.events.clear();
  out.ReadNext();  // 4 bytes unread: at the bound
  EXPECT_THAT(call.events, ElementsAre());
  out.OnWriteDone(true);  // the client read them: reading resumes
  EXPECT_THAT(call.events, ElementsAre("read"));
}

TEST(StreamOutput, CancelEndsAPausedReadAndRefusesNewRequests) {
  FakeCall call;
  StreamOutput out(&call, 1);
  ASSERT_TRUE(out.RequestStarted());
  out.Send(Message("x"));
  out.ReadNext();  // paused
  call.events.clear();
  out.OnCancel();
  EXPECT_TRUE(out.cancelled());
  EXPECT_FALSE(out.RequestStarted());
  EXPECT_TRUE(call.events.empty());  // a request and a write are still out
  out.RequestEnded(nullptr);
  out.OnWriteDone(false);
  EXPECT_THAT(call.events, ElementsAre("finish 0"));
}

TEST(StreamOutput, AFailedWriteDropsTheRestAndCancels) {
  FakeCall call;
  StreamOutput out(&call, 1 << 20);
  ASSERT_TRUE(out.RequestStarted());
  out.EndInput();
  out.Send(Message("a"));
  out.Send(Message("b"));
  out.OnWriteDone(false);  // the client is gone
  EXPECT_TRUE(out.cancelled());
  EXPECT_TRUE(out.Ready());
  EXPECT_THAT(call.events, ElementsAre("write a"));  // "b" dropped
  out.SetStatus(grpc::Status(grpc::StatusCode::CANCELLED, "gone"));
  out.RequestEnded(nullptr);
  EXPECT_THAT(call.events, ElementsAre("write a", "finish 1"));
}

TEST(StreamOutput, NothingReachesADetachedCall) {
  FakeCall call;
  StreamOutput out(&call, 1 << 20);
  ASSERT_TRUE(out.RequestStarted());
  out.Detach();
  out.Send(Message("a"));
  out.RequestEnded(nullptr);
  out.EndInput();
  EXPECT_TRUE(call.events.empty());
}

}  // namespace
}  // namespace tierserve
