// SPDX-License-Identifier: GPL-3.0-or-later
// Results-store throughput: metric points written per second (the goal is >= 200k points/s on a
// 2-core machine) and the cost of the run browser's query. Figures and the command that produced
// them: docs/store.md.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/store/store.h"
#include "test_support.h"

namespace {

using mmlab::store::MetricBuffer;
using mmlab::store::MetricPoint;
using mmlab::store::NewRun;
using mmlab::store::ResultsStore;
using mmlab::store::RunWriter;

int64_t new_run(ResultsStore& store, const std::string& name) {
  NewRun run;
  run.experiment_id = store.ensure_experiment("bench");
  run.name = name;
  run.family = "mamba";
  return store.create_run(run);
}

std::vector<std::string> metric_names(int n) {
  // The trainer's vocabulary, padded with per-layer names as MoE runs record them.
  std::vector<std::string> names = {"loss",         "loss_smooth", "lr",      "grad_norm",
                                    "tokens_per_s", "step_time",   "lb_loss", "val_loss"};
  for (int i = 0; static_cast<int>(names.size()) < n; ++i) {
    names.push_back("layer" + std::to_string(i) + ".expert_load");
  }
  names.resize(static_cast<size_t>(n));
  return names;
}

// One append_points() call (one transaction) per iteration: `batch` points over `metrics`
// metrics, i.e. batch/metrics consecutive steps of every metric.
void BM_AppendPoints(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const int metrics = static_cast<int>(state.range(1));
  mmlab::test::TempDir dir;
  ResultsStore store(dir / "bench.sqlite");
  RunWriter writer = store.writer(new_run(store, "append"));
  const std::vector<std::string> names = metric_names(metrics);
  std::vector<MetricPoint> points;
  for (int i = 0; i < batch; ++i) {
    points.push_back({names[static_cast<size_t>(i % metrics)], i / metrics, 0, 0.0, 0.0});
  }
  const int64_t steps_per_batch = (batch + metrics - 1) / metrics;
  int64_t first_step = 0;
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      MetricPoint& p = points[static_cast<size_t>(i)];
      p.step = first_step + i / metrics;
      p.tokens = p.step * 4096;
      p.wall = 0.05 * static_cast<double>(p.step);
      p.value = 10.0 / static_cast<double>(1 + p.step) + 0.001 * (i % metrics);
    }
    writer.append_points(points);
    first_step += steps_per_batch;
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["points/s"] = benchmark::Counter(static_cast<double>(state.iterations() * batch),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AppendPoints)
    ->ArgNames({"batch", "metrics"})
    ->Args({100, 10})
    ->Args({1000, 10})
    ->Args({10000, 10})
    ->Args({1000, 40})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The trainer's path: one MetricBuffer::add per point per step, flushed every 1000 points.
void BM_MetricBuffer(benchmark::State& state) {
  const int metrics = static_cast<int>(state.range(0));
  mmlab::test::TempDir dir;
  ResultsStore store(dir / "bench.sqlite");
  const int64_t run = new_run(store, "buffer");
  const std::vector<std::string> names = metric_names(metrics);
  RunWriter writer = store.writer(run);
  MetricBuffer buffer(writer, 1000, std::chrono::hours(1));
  int64_t step = 0;
  for (auto _ : state) {
    for (const std::string& name : names) {
      buffer.add(name, step, step * 4096, 0.05 * static_cast<double>(step),
                 10.0 / static_cast<double>(1 + step));
    }
    ++step;
  }
  buffer.flush();
  state.SetItemsProcessed(state.iterations() * metrics);
  state.counters["points/s"] = benchmark::Counter(static_cast<double>(state.iterations() * metrics),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MetricBuffer)->ArgNames({"metrics"})->Arg(10)->UseRealTime();

// The run browser's query over `runs` runs of 2,000 points each: it reads summaries, never points,
// so its cost follows the number of runs, not the number of points.
void BM_ListRuns(benchmark::State& state) {
  const int runs = static_cast<int>(state.range(0));
  mmlab::test::TempDir dir;
  ResultsStore store(dir / "bench.sqlite");
  const std::vector<std::string> names = metric_names(10);
  for (int r = 0; r < runs; ++r) {
    const int64_t run = new_run(store, "run" + std::to_string(r));
    std::vector<MetricPoint> points;
    for (int64_t s = 0; s < 200; ++s) {
      for (const std::string& n : names) points.push_back({n, s, s, 0.0, 1.0 / (1 + s)});
    }
    store.writer(run).append_points(points);
    if (r % 3 == 0) store.metadata().add_tag(run, "paper");
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(store.reader().list_runs());
  }
  state.counters["runs/s"] = benchmark::Counter(static_cast<double>(state.iterations() * runs),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ListRuns)
    ->ArgNames({"runs"})
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
