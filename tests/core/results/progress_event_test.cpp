// SPDX-License-Identifier: GPL-3.0-or-later
// The progress protocol's events: what the trainer writes is what the studio reads back, field
// for field, and the lines are those of docs/progress-protocol.md.
#include "core/results/progress_event.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace mmlab {
namespace {

ProgressEvent read_back(const std::string& line) {
  ProgressEvent out;
  std::string why;
  EXPECT_EQ(parse_event(nlohmann::json::parse(line), out, why), EventParse::kEvent) << why;
  return out;
}

// Every field set, so a key the writer and the reader spelled differently loses a value.
ProgressEvent every_field(EventKind kind) {
  ProgressEvent e;
  e.kind = kind;
  e.run_id = 3;
  e.wall = 20.5;
  e.step = 50;
  e.tokens = 204800;
  e.total_steps = 400;
  e.status = RunStatus::kDiverged;
  e.message = "The loss became nan.";
  e.name = "moe-mamba";
  e.db = "/tmp/r.sqlite";
  e.device = "cpu";
  e.path = "/c/step-50.pt";
  e.bytes = 1843200;
  e.level = "warning";
  e.fraction = 0.25;
  e.metrics = {{"loss", 2.5}, {"loss_smooth", std::numeric_limits<double>::quiet_NaN()}};
  return e;
}

TEST(ProgressEvent, EveryFieldOfEveryKindReadsBackAsWritten) {
  for (EventKind kind : {EventKind::kStatus, EventKind::kStep, EventKind::kEval,
                         EventKind::kCheckpoint, EventKind::kLog}) {
    ProgressEvent e = every_field(kind);
    // Only step and eval events carry metrics.
    if (kind != EventKind::kStep && kind != EventKind::kEval) e.metrics.clear();
    const ProgressEvent back = read_back(to_line(e));
    EXPECT_TRUE(back == e) << to_line(e);
    EXPECT_EQ(back.status, kind == EventKind::kStatus ? RunStatus::kDiverged : RunStatus::kQueued);
  }
  // The comparison itself sees a lost field.
  ProgressEvent a = every_field(EventKind::kStatus), b = a;
  b.device.clear();
  EXPECT_FALSE(a == b);
}

TEST(ProgressEvent, LineFollowsTheProtocolAndWritesNanAsNull) {
  ProgressEvent e;
  e.kind = EventKind::kStep;
  e.run_id = 7;
  e.wall = 1.5;
  e.step = 3;
  e.metrics = {{"loss", std::numeric_limits<double>::quiet_NaN()}, {"lr", 0.5}};
  EXPECT_EQ(to_line(e),
            R"({"event":"step","metrics":{"loss":null,"lr":0.5},"run_id":7,"step":3,"wall":1.5})");
  ProgressEvent s;
  s.kind = EventKind::kStatus;
  s.run_id = 3;
  s.status = RunStatus::kFinished;
  s.step = 400;
  s.total_steps = 400;
  EXPECT_EQ(to_line(s),
            R"({"event":"status","run_id":3,"status":"finished","step":400,"total_steps":400,)"
            R"("wall":0.0})");
}

TEST(ProgressEvent, RefusesWhatIsNotAnEventAndSkipsUnknownKinds) {
  ProgressEvent out;
  std::string why;
  auto parse = [&](const char* text) {
    why.clear();
    return parse_event(nlohmann::json::parse(text), out, why);
  };
  EXPECT_EQ(parse(R"({"event":"heartbeat","run_id":3})"), EventParse::kUnknownEvent);
  EXPECT_EQ(parse(R"({"event":"status","run_id":3,"status":"done"})"), EventParse::kMalformed);
  EXPECT_EQ(why, "unknown status \"done\"");
  EXPECT_EQ(parse(R"({"event":"status","run_id":3})"), EventParse::kMalformed);
  EXPECT_EQ(parse(R"({"event":"eval","run_id":3,"metrics":{}})"), EventParse::kMalformed);
  EXPECT_EQ(why, "\"eval\" event without step");
  EXPECT_EQ(parse(R"({"event":"log","run_id":3,"device":7})"), EventParse::kMalformed);
  EXPECT_EQ(parse("[1]"), EventParse::kMalformed);
  EXPECT_EQ(out.run_id, -1);  // left alone by every refusal
}

}  // namespace
}  // namespace mmlab
