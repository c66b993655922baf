// SPDX-License-Identifier: GPL-3.0-or-later
// Data pipeline figures quoted in docs/data.md: corpus preparation with each tokenizer (cache
// off, so every iteration tokenizes) and GPT-2 encoding throughput. Needs scripts/get-corpus.
//   build/tests/bench/data_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <filesystem>

#include "core/data/corpus.h"
#include "core/data/sampler.h"
#include "core/util/error.h"

namespace {

using mmlab::DataConfig;

void prepare(benchmark::State& state, const std::string& source, const std::string& tokenizer) {
  DataConfig spec;
  spec.source = source;
  spec.tokenizer = tokenizer;
  spec.cache = false;
  try {
    mmlab::data::prepare_corpus(spec);  // loads the tokenizer files once before timing
  } catch (const mmlab::UserError& e) {
    state.SkipWithError(e.what());
    return;
  }
  mmlab::data::CorpusStats stats;
  for (auto _ : state) stats = mmlab::data::prepare_corpus(spec).stats;
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(stats.bytes) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["documents"] = static_cast<double>(stats.documents);
  state.counters["tokens"] = static_cast<double>(stats.train_tokens + stats.val_tokens);
}

void BM_PrepareDefaultGpt2(benchmark::State& state) {
  prepare(state, "default", "gpt2");
}
void BM_PrepareDefaultByte(benchmark::State& state) {
  prepare(state, "default", "byte");
}
void BM_PrepareLargeGpt2(benchmark::State& state) {
  prepare(state, "large", "gpt2");
}

void BM_RandomBatches(benchmark::State& state) {
  std::vector<std::int32_t> tokens(3'000'000, 1);
  mmlab::data::WindowSampler sampler(tokens, 1024, 32, mmlab::data::SamplingMode::kRandom, 1);
  std::vector<std::int32_t> batch(32 * 1025);
  for (auto _ : state) sampler.next_batch(batch.data());
  state.SetItemsProcessed(state.iterations() * 32 * 1024);
}

BENCHMARK(BM_PrepareDefaultGpt2)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();
BENCHMARK(BM_PrepareDefaultByte)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();
BENCHMARK(BM_PrepareLargeGpt2)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_RandomBatches);

}  // namespace

BENCHMARK_MAIN();
