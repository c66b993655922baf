// SPDX-License-Identifier: GPL-3.0-or-later
// What the SSH and Slurm run tests share: a tiny experiment, a reader of a followed event
// stream, and the points of a run in a database, compared with NaN equal to NaN.
#pragma once

#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "core/remote/process.h"
#include "core/store/store.h"

namespace mmlab::test {

namespace remote_support {
namespace fs = std::filesystem;
using nlohmann::json;
using Point = std::tuple<std::string, int64_t, int64_t, double, double>;

inline std::vector<Point> all_points(const fs::path& db, const std::string& uuid) {
  store::OpenOptions ro;
  ro.mode = store::Database::Mode::kReadOnly;
  store::ResultsStore st(db, ro);
  std::vector<Point> out;
  const auto run = st.reader().find_run_by_uuid(uuid);
  if (!run) return out;
  st.reader().for_each_point(run->id, [&](const std::string& m, const store::PointRow& p) {
    out.emplace_back(m, p.step, p.tokens, p.wall, p.value);
  });
  return out;
}

// The points of `a` that `b` lacks or holds with another value (NaN equals NaN: a diverged
// step is stored as NULL), for a readable failure.
inline std::string difference(const std::vector<Point>& a, const std::vector<Point>& b) {
  auto same = [](const Point& x, const Point& y) {
    const double vx = std::get<4>(x), vy = std::get<4>(y);
    return std::get<0>(x) == std::get<0>(y) && std::get<1>(x) == std::get<1>(y) &&
           std::get<2>(x) == std::get<2>(y) && std::get<3>(x) == std::get<3>(y) &&
           (vx == vy || (std::isnan(vx) && std::isnan(vy)));
  };
  std::string out;
  size_t j = 0;
  for (const auto& p : a) {
    while (j < b.size() &&
           (std::get<0>(b[j]) < std::get<0>(p) ||
            (std::get<0>(b[j]) == std::get<0>(p) && std::get<1>(b[j]) < std::get<1>(p)))) {
      ++j;
    }
    if (j >= b.size() || !same(p, b[j])) {
      out += std::get<0>(p) + "@" + std::to_string(std::get<1>(p)) + " ";
      if (out.size() > 400) break;
    }
  }
  return out;
}

/// SIGKILL to the trainer of launch `tag` if `pid` still is it (a pid is reused once its process
/// has gone: the launch's MMLAB_LAUNCH variable in the environment tells them apart).
inline void kill_trainer(int64_t pid, const std::string& tag) {
  std::ifstream env("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  const std::string vars((std::istreambuf_iterator<char>(env)), {});
  if (!tag.empty() && vars.find("MMLAB_LAUNCH=" + tag) != std::string::npos) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
  }
}

/// A Mamba experiment of one or more runs of `steps` steps over the corpus in `corpus`.
inline fs::path write_experiment(const fs::path& dir, const fs::path& corpus, int64_t steps,
                                 const std::vector<std::string>& runs = {"mamba"}) {
  json list = json::array();
  for (const auto& r : runs) list.push_back({{"name", r}, {"model", {{"family", "mamba"}}}});
  json ex = {
      {"name", "remote-e2e"},
      {"defaults",
       {{"model", {{"d_model", 32}, {"n_block", 1}, {"d_state", 8}}},
        {"train",
         {{"steps", steps},
          {"batch_size", 4},
          {"seq_len", 32},
          {"lr", 3e-3},
          {"eval_every", 10},
          {"eval_batches", 2},
          {"checkpoint_every", 0},
          {"threads", 1}}},
        {"data", {{"source", corpus.string()}, {"tokenizer", "byte"}, {"val_fraction", 0.2}}}}},
      {"runs", list}};
  const fs::path p = dir / ("experiment-" + std::to_string(steps) + ".json");
  std::ofstream(p) << ex.dump(2);
  return p;
}

/// What a follower of one launch has read.
struct Stream {
  std::string text;  ///< every complete line, with its '\n'
  int64_t offset = 0;
  int64_t last_step = 0;
  std::map<int64_t, double> loss;  ///< step -> the live `loss`
  std::vector<std::string> statuses;
  int checkpoints = 0;

  /// Reads lines until `until` holds for one (true) or the stream ends (false).
  template <class Pred>
  bool read_until(remote::LineProcess& follower, Pred until) {
    std::string line;
    while (follower.read_line(line)) {
      text += line + "\n";
      offset += static_cast<int64_t>(line.size()) + 1;
      const json j = json::parse(line);
      if (j["event"] == "step") {
        last_step = j["step"].get<int64_t>();
        loss[last_step] = j["metrics"]["loss"].get<double>();
      }
      if (j["event"] == "checkpoint") ++checkpoints;
      if (j["event"] == "status") statuses.push_back(j["status"].get<std::string>());
      if (until(j)) return true;
    }
    return false;
  }
  /// Reads to the end of the stream (the trainer has ended).
  void read_to_end(remote::LineProcess& follower) {
    read_until(follower, [](const json&) { return false; });
  }
};

}  // namespace remote_support
}  // namespace mmlab::test
