// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ui/progress_parser.h"

using mmlab::EventKind;
using mmlab::ProgressEvent;
using mmlab::ui::ProgressParser;

namespace {

const char kStatus[] =
    R"({"event":"status","run_id":3,"wall":0.0,"status":"running","step":0,"total_steps":400,)"
    R"("name":"moe-mamba","db":"/tmp/r.sqlite"})";
const char kStep[] =
    R"({"event":"step","run_id":3,"wall":0.41,"step":1,"tokens":4096,"total_steps":400,)"
    R"("metrics":{"loss":10.83,"loss_smooth":10.5,"lr":1e-05,"grad_norm":null}})";

}  // namespace

TEST(ProgressParser, ParsesEveryEventKindOfTheProtocolExample) {
  ProgressParser p;
  std::string text =
      std::string(kStatus) + "\n" + kStep + "\n" +
      R"({"event":"eval","run_id":3,"wall":20.5,"step":50,"tokens":204800,)"
      R"("metrics":{"val_loss":6.02,"val_ppl":411.6}})"
      "\n"
      R"({"event":"checkpoint","run_id":3,"wall":20.9,"step":50,"path":"/c/step-50.pt","bytes":1843200})"
      "\n"
      R"({"event":"log","run_id":3,"wall":21,"level":"warning","message":"slow disk","fraction":0.25})"
      "\n";
  auto ev = p.feed(text);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[0].kind, EventKind::kStatus);
  EXPECT_EQ(ev[0].status, mmlab::RunStatus::kRunning);
  EXPECT_EQ(ev[0].total_steps, 400);
  EXPECT_EQ(ev[0].name, "moe-mamba");
  EXPECT_EQ(ev[0].db, "/tmp/r.sqlite");
  EXPECT_EQ(ev[1].kind, EventKind::kStep);
  EXPECT_EQ(ev[1].run_id, 3);
  EXPECT_DOUBLE_EQ(ev[1].wall, 0.41);
  EXPECT_EQ(ev[1].step, 1);
  EXPECT_EQ(ev[1].tokens, 4096);
  ASSERT_EQ(ev[1].metrics.size(), 4u);
  // nlohmann keeps object keys sorted: grad_norm, loss, loss_smooth, lr.
  EXPECT_EQ(ev[1].metrics[0].first, "grad_norm");
  EXPECT_TRUE(std::isnan(ev[1].metrics[0].second));
  EXPECT_EQ(ev[1].metrics[1].first, "loss");
  EXPECT_DOUBLE_EQ(ev[1].metrics[1].second, 10.83);
  EXPECT_DOUBLE_EQ(ev[1].metrics[3].second, 1e-05);
  EXPECT_EQ(ev[2].kind, EventKind::kEval);
  EXPECT_DOUBLE_EQ(ev[2].metrics[1].second, 411.6);
  EXPECT_EQ(ev[3].kind, EventKind::kCheckpoint);
  EXPECT_EQ(ev[3].bytes, 1843200);
  EXPECT_EQ(ev[3].path, "/c/step-50.pt");
  EXPECT_EQ(ev[4].kind, EventKind::kLog);
  EXPECT_EQ(ev[4].level, "warning");
  EXPECT_EQ(ev[4].message, "slow disk");
  EXPECT_DOUBLE_EQ(ev[4].fraction, 0.25);
  EXPECT_DOUBLE_EQ(ev[0].fraction, -1);
  EXPECT_EQ(p.events(), 5);
  EXPECT_EQ(p.malformed(), 0);
}

TEST(ProgressParser, ReassemblesLinesSplitAcrossChunksAtEveryByte) {
  const std::string text = std::string(kStatus) + "\r\n" + kStep + "\n";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    ProgressParser p;
    auto a = p.feed(std::string_view(text).substr(0, cut));
    auto b = p.feed(std::string_view(text).substr(cut));
    EXPECT_EQ(a.size() + b.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(p.malformed(), 0) << "cut at " << cut;
  }
}

TEST(ProgressParser, CountsMalformedLinesAndKeepsGoing) {
  ProgressParser p;
  const std::string text =
      "Loading tokenizer...\n"                               // plain text
      "{\"event\":\"step\",\"run_id\":3,\"step\":\n"         // truncated JSON
      "[1,2,3]\n"                                            // not an object
      "{\"run_id\":3}\n"                                     // no event
      "{\"event\":\"step\",\"step\":2}\n"                    // no run_id
      "{\"event\":\"step\",\"run_id\":\"x\",\"step\":2}\n"   // run_id wrong type
      "{\"event\":\"step\",\"run_id\":3,\"step\":2.5}\n"     // fractional step
      "{\"event\":\"status\",\"run_id\":3}\n"                // status without status
      "{\"event\":\"step\",\"run_id\":3,\"metrics\":[1]}\n"  // metrics not an object
      "\n   \n"                                              // blank: not counted
      "{\"event\":\"heartbeat\",\"run_id\":3}\n"             // unknown event: ignored
      "{\"event\":\"step\",\"run_id\":3,\"step\":7,\"tokens\":70.0,\"extra\":{\"a\":1},"
      "\"metrics\":{\"loss\":2.5,\"note\":\"x\"}}\n"  // good; unknown keys ignored
      "\xff\xfe\x00garbage\n";
  auto ev = p.feed(std::string_view(text.data(), text.size()));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].step, 7);
  EXPECT_EQ(ev[0].tokens, 70);
  ASSERT_EQ(ev[0].metrics.size(), 1u);  // the string-valued metric is dropped alone
  EXPECT_EQ(ev[0].metrics[0].first, "loss");
  EXPECT_EQ(p.malformed(), 9);
  EXPECT_EQ(p.ignored(), 1);
  EXPECT_EQ(p.events(), 1);
  EXPECT_FALSE(p.last_error().empty());
}

TEST(ProgressParser, FinishParsesATrailingLineWithoutNewline) {
  ProgressParser p;
  EXPECT_TRUE(p.feed(kStep).empty());
  auto ev = p.finish();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].step, 1);
  EXPECT_TRUE(p.finish().empty());
}

TEST(ProgressParser, DropsAnOverlongLineWithoutBufferingItAndResyncs) {
  ProgressParser p;
  std::string junk(ProgressParser::kMaxLine / 4, 'x');
  for (int i = 0; i < 6; ++i) p.feed(junk);  // 1.5 MiB without a newline
  auto ev = p.feed(std::string("tail\n") + kStep + "\n");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].step, 1);
  EXPECT_EQ(p.malformed(), 1);
}
