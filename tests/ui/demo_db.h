// SPDX-License-Identifier: GPL-3.0-or-later
// A results database with believable curves for the window tests and the screenshots: the
// paper's four families (MoE-Mamba with two seeds), one with a loss spike, one still running and
// one lost (marked running, stale heartbeat, process gone).
#pragma once

#include <unistd.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/config/param_count.h"
#include "core/results/ema.h"
#include "core/store/store.h"

namespace mmlab::test {

struct DemoRun {
  std::string name, family;
  double offset;  // final-loss offset: the paper's ordering
  int64_t seed;
  mmlab::store::RunStatus status;
};

inline std::vector<int64_t> write_demo_db(const std::string& path, int steps = 2000) {
  namespace store = mmlab::store;
  store::ResultsStore s(path);
  const int64_t exp = s.ensure_experiment("paper-25m-short");
  const std::vector<DemoRun> runs{
      {"transformer", "transformer", 0.10, 1, store::RunStatus::kFinished},
      {"mamba", "mamba", 0.04, 1, store::RunStatus::kFinished},
      {"transformer-moe", "transformer-moe", -0.02, 1, store::RunStatus::kFinished},
      {"moe-mamba/seed-1", "moe-mamba", -0.12, 1, store::RunStatus::kFinished},
      {"moe-mamba/seed-2", "moe-mamba", -0.02, 2, store::RunStatus::kRunning},
      {"parallel-moe-mamba", "parallel-moe-mamba", -0.05, 1, store::RunStatus::kLost},
  };
  std::vector<int64_t> ids;
  std::mt19937 rng(42);
  std::normal_distribution<double> noise(0.0, 0.12);
  for (const DemoRun& d : runs) {
    mmlab::RunConfig rc;
    rc.name = d.name;
    rc.seed = d.seed;
    rc.model.family = d.family;
    rc.model.d_model = 512;
    rc.model.n_block = 8;
    rc.model.n_expert = d.family.find("moe") != std::string::npos ? 42 : 8;
    rc.train.steps = steps;
    rc.train.batch_size = 32;
    rc.train.seq_len = 256;
    rc.train.device = "cuda:0";
    rc.data.tokenizer = "gpt2";
    store::NewRun nr;
    nr.experiment_id = exp;
    nr.name = d.name;
    nr.family = d.family;
    nr.config_json = mmlab::to_json(rc).dump();
    nr.seed = d.seed;
    nr.total_steps = steps;
    nr.status = store::RunStatus::kRunning;
    const int64_t id = s.create_run(nr);
    ids.push_back(id);
    const auto pc = mmlab::count_params(rc.model, 50257);
    store::RunStart st;
    st.pid = d.status == store::RunStatus::kLost ? 999999 : int64_t(::getpid());
    st.host = store::current_host();
    st.device = "cuda:0 (NVIDIA H200)";
    st.params_total = pc.total;
    st.params_active = pc.active;
    st.params_nonembed = pc.nonembed;
    s.writer(id).mark_started(st);
    const int last = d.status == store::RunStatus::kFinished  ? steps
                     : d.status == store::RunStatus::kRunning ? steps * 6 / 10
                                                              : steps * 3 / 10;
    const double tps = d.family.find("mamba") != std::string::npos ? 61000 : 54000;
    mmlab::DebiasedEma ema(0.01);
    std::vector<store::MetricPoint> pts;
    for (int t = 1; t <= last; ++t) {
      const int64_t tokens = int64_t(t) * 32 * 256;
      const double wall = t * 32 * 256 / tps;
      double loss =
          3.1 + d.offset + 7.6 * std::exp(-t / 260.0) + 0.6 * std::exp(-t / 1500.0) + noise(rng);
      if (d.name == "mamba" && t == 1234) loss += 3.0;  // a one-step spike
      pts.push_back({"loss", t, tokens, wall, loss});
      pts.push_back({"loss_smooth", t, tokens, wall, ema.update(loss)});
      pts.push_back({"tokens_per_s", t, tokens, wall, tps * (1 + 0.02 * noise(rng))});
      pts.push_back({"lr", t, tokens, wall, 1e-3 * std::min(1.0, t / 20.0)});
      if (d.family.find("moe") != std::string::npos)
        pts.push_back({"aux_loss", t, tokens, wall, 0.0105 + 0.002 * std::exp(-t / 400.0)});
      if (d.family.find("moe") != std::string::npos && t % 10 == 0) {
        // Two MoE layers of 8 experts: layer 1 balances out, layer 3 leans on expert 5.
        for (int layer : {1, 3})
          for (int e = 0; e < 8; ++e) {
            double share = 1.0 / 8 + 0.06 * std::sin(e * 1.3 + t / 150.0) * std::exp(-t / 700.0);
            if (layer == 3) share += (e == 5 ? 0.18 : -0.18 / 7) * std::min(1.0, t / 800.0);
            pts.push_back({"expert_load/" + std::to_string(layer) + "/" + std::to_string(e), t,
                           tokens, wall, share});
          }
      }
      if (t % 100 == 0) {
        const double val =
            3.2 + d.offset + 7.6 * std::exp(-t / 260.0) + 0.6 * std::exp(-t / 1500.0);
        pts.push_back({"val_loss", t, tokens, wall, val});
        pts.push_back({"val_ppl", t, tokens, wall, std::exp(val)});
      }
    }
    s.writer(id).append_points(pts);
    s.writer(id).heartbeat(last, int64_t(last) * 32 * 256);
    if (d.status == store::RunStatus::kFinished)
      s.writer(id).set_status(store::RunStatus::kFinished);
  }
  s.metadata().add_tag(ids[0], "baseline");
  s.metadata().add_tag(ids[3], "paper");
  s.metadata().add_tag(ids[4], "paper");
  s.metadata().set_note(ids[3],
                        "MoE-Mamba reaches the Transformer's final loss with ~2x fewer tokens.");
  // The lost run: its heartbeat is old and pid 999999 does not exist.
  s.database().exec("UPDATE runs SET heartbeat_at = heartbeat_at - 3600 WHERE id = " +
                    std::to_string(ids[5]));
  return ids;
}

}  // namespace mmlab::test
