// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "core/config/experiment.h"
#include "core/train/fault_point.h"
#include "core/util/error.h"
#include "core/util/file_writer.h"
#include "core/util/fs.h"

namespace mmlab {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kFormatVersion = 1;

nlohmann::json state_json(const TrainState& s) {
  return {{"step", s.step},
          {"tokens", s.tokens},
          {"wall", s.wall},
          {"ema_raw", s.ema_raw},
          {"ema_count", s.ema_count},
          {"data_state", s.data_state},
          {"tokenizer_kind", s.tokenizer_kind},
          {"tokenizer_path", s.tokenizer_path}};
}

std::string read_string(torch::serialize::InputArchive& in, const std::string& key) {
  c10::IValue v;
  in.read(key, v);
  return v.toStringRef();
}

torch::serialize::InputArchive open_archive(const fs::path& path) {
  if (!fs::exists(path)) {
    throw UserError("The checkpoint " + path.string() + " does not exist.",
                    "Check the path, or list a run's checkpoints with `mmlab runs show RUN`.");
  }
  torch::serialize::InputArchive in;
  try {
    in.load_from(path.string());
  } catch (const c10::Error&) {
    throw UserError("The checkpoint " + path.string() + " is corrupt or not an mmlab checkpoint.",
                    "Use an earlier checkpoint of the run.");
  }
  return in;
}

nlohmann::json read_meta(torch::serialize::InputArchive& in, const fs::path& path) {
  try {
    auto meta = nlohmann::json::parse(read_string(in, "mmlab_meta"));
    if (meta.value("format", int64_t{0}) > kFormatVersion) {
      throw UserError("The checkpoint " + path.string() + " was written by a newer mmlab.",
                      "Upgrade mmlab to load it.");
    }
    return meta;
  } catch (const c10::Error&) {
    throw UserError("The checkpoint " + path.string() + " is not an mmlab checkpoint.",
                    "Give a file written by `mmlab train`.");
  } catch (const nlohmann::json::exception&) {
    throw UserError("The checkpoint " + path.string() + " has a corrupt header.",
                    "Use an earlier checkpoint of the run.");
  }
}

}  // namespace

SavedCheckpoint save_checkpoint(const fs::path& path, const RunConfig& config, LanguageModel& model,
                                torch::optim::Optimizer* optimizer, const TrainState& state) {
  fs::create_directories(path.parent_path());
  torch::serialize::OutputArchive out;
  nlohmann::json meta = {
      {"format", kFormatVersion}, {"config", to_json(config)}, {"state", state_json(state)}};
  out.write("mmlab_meta", c10::IValue(meta.dump()));
  torch::serialize::OutputArchive weights;
  for (const auto& p : model->named_parameters()) weights.write(p.key(), p.value().detach().cpu());
  out.write("model", weights);
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    out.write("optimizer", opt);
  }
  out.write("rng_cpu", torch::globalContext().defaultGenerator(torch::kCPU).get_state());
  torch::serialize::OutputArchive load;
  for (size_t i = 0; i < state.expert_load.size(); ++i) {
    if (state.expert_load[i].defined()) {
      load.write(std::to_string(i), state.expert_load[i].detach().cpu());
    }
  }
  out.write("expert_load", load);
  SavedCheckpoint saved;
  FileWriter file(path, {"the checkpoint",
                         "Free some space or lower train.keep_checkpoints, then resume the run.",
                         "Check the disk and that the directory is writable."});
  XXH64_state_t* hasher = XXH64_createState();
  XXH64_reset(hasher, 0);
  // The writer never reports failure to LibTorch: its archive writer throws from a destructor
  // on a failed write, which aborts the process (seen with a full disk). The first error is kept
  // and thrown once the archive is complete; the writer then removes its temporary file.
  std::exception_ptr failed;
  bool announced = false;
  out.save_to([&](const void* data, size_t n) -> size_t {
    XXH64_update(hasher, data, n);
    if (!failed) {
      try {
        file.write(data, n);
      } catch (...) {
        failed = std::current_exception();
      }
    }
    if (!announced) fault_point("checkpoint-write");  // a kill here leaves a partial temp file
    announced = true;
    return n;
  });
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH64_digest(hasher)));
  XXH64_freeState(hasher);
  if (failed) std::rethrow_exception(failed);
  file.commit();
  saved.hash = hex;
  saved.bytes = static_cast<int64_t>(fs::file_size(path));
  return saved;
}

std::string file_xxh64(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    throw UserError(
        "Cannot read the checkpoint " + path.string() + ": " + std::strerror(errno) + ".",
        "Check that it exists and is readable.");
  }
  XXH64_state_t* hasher = XXH64_createState();
  XXH64_reset(hasher, 0);
  std::vector<char> buf(1 << 20);
  int read_errno = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) read_errno = errno;
    if (n <= 0) break;
    XXH64_update(hasher, buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH64_digest(hasher)));
  XXH64_freeState(hasher);
  if (read_errno != 0) {
    throw UserError(
        "Cannot read the checkpoint " + path.string() + ": " + std::strerror(read_errno) + ".",
        "Check the disk.");
  }
  return hex;
}

std::optional<std::string> checkpoint_problem(const fs::path& path, int64_t bytes,
                                              const std::string& hash) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return "The checkpoint " + path.string() + " is missing.";
  const auto size = fs::file_size(path, ec);
  if (ec) return "The checkpoint " + path.string() + " cannot be read (" + ec.message() + ").";
  if (bytes > 0 && static_cast<int64_t>(size) != bytes) {
    return "The checkpoint " + path.string() + " has " + std::to_string(size) + " bytes where " +
           std::to_string(bytes) + " were written: it is damaged.";
  }
  if (!hash.empty() && file_xxh64(path) != hash) {
    return "The checkpoint " + path.string() +
           " is damaged: its content hash differs from the one recorded when it was written.";
  }
  return std::nullopt;
}

bool training_state_is_finite(LanguageModel& model, torch::optim::Optimizer* optimizer) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> finite;  // one bool per tensor, read back once
  for (const auto& p : model->parameters()) finite.push_back(torch::isfinite(p).all());
  if (optimizer) {
    for (const auto& entry : optimizer->state()) {
      const auto* adam = dynamic_cast<const torch::optim::AdamWParamState*>(entry.second.get());
      if (!adam) continue;
      for (const torch::Tensor& t : {adam->exp_avg(), adam->exp_avg_sq(), adam->max_exp_avg_sq()}) {
        if (t.defined()) finite.push_back(torch::isfinite(t).all().to(finite.front().device()));
      }
    }
  }
  return finite.empty() || torch::stack(finite).all().item<bool>();
}

RunConfig read_checkpoint_config(const fs::path& path) {
  auto in = open_archive(path);
  return run_config_from_json(read_meta(in, path)["config"]);
}

namespace {

// Loads an opened checkpoint; `path` names it in messages.
TrainState load_archive(torch::serialize::InputArchive& in, const fs::path& path,
                        LanguageModel& model, torch::optim::Optimizer* optimizer) {
  nlohmann::json meta = read_meta(in, path);
  RunConfig stored = run_config_from_json(meta["config"]);
  if (to_json(stored.model) != to_json(model->config)) {
    throw UserError("The checkpoint " + path.string() + " was written for another model config (" +
                        stored.model.family + ", d_model " + std::to_string(stored.model.d_model) +
                        ", pattern \"" + stored.model.resolved_pattern() + "\").",
                    "Load it with the run's own config, or start a new run.");
  }
  torch::serialize::InputArchive weights;
  in.read("model", weights);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      torch::Tensor t;
      try {
        weights.read(p.key(), t);
      } catch (const c10::Error&) {
        throw UserError("The checkpoint " + path.string() + " lacks the tensor " + p.key() + ".",
                        "It belongs to another model; start a new run.");
      }
      if (t.sizes() != p.value().sizes()) {
        throw UserError(
            "The checkpoint " + path.string() + " holds " + p.key() + " with another shape.",
            "It belongs to another model; start a new run.");
      }
      p.value().copy_(t);
    }
  }
  if (optimizer) {
    torch::serialize::InputArchive opt;
    in.read("optimizer", opt);
    optimizer->load(opt);
  }
  torch::Tensor rng;
  in.read("rng_cpu", rng);
  at::Generator cpu_generator = torch::globalContext().defaultGenerator(torch::kCPU);  // shared
  cpu_generator.set_state(rng);

  TrainState state;
  // Checkpoints written before the expert load was saved simply have none.
  torch::serialize::InputArchive load;
  if (in.try_read("expert_load", load)) {
    const size_t layers = model->moe_layers().size();
    state.expert_load.resize(layers);
    for (size_t i = 0; i < layers; ++i) {
      torch::Tensor t;
      if (load.try_read(std::to_string(i), t)) state.expert_load[i] = t;
    }
  }
  const auto& s = meta["state"];
  state.step = s.value("step", int64_t{0});
  state.tokens = s.value("tokens", int64_t{0});
  state.wall = s.value("wall", 0.0);
  state.ema_raw = s.value("ema_raw", 0.0);
  state.ema_count = s.value("ema_count", int64_t{0});
  state.data_state = s.value("data_state", "");
  state.tokenizer_kind = s.value("tokenizer_kind", "");
  state.tokenizer_path = s.value("tokenizer_path", "");
  return state;
}

}  // namespace

TrainState load_checkpoint(const fs::path& path, LanguageModel& model,
                           torch::optim::Optimizer* optimizer) {
  auto in = open_archive(path);
  return load_archive(in, path, model, optimizer);
}

TrainState load_checkpoint_bytes(const std::string& bytes, const fs::path& path,
                                 LanguageModel& model, torch::optim::Optimizer* optimizer) {
  torch::serialize::InputArchive in;
  try {
    in.load_from(bytes.data(), bytes.size());
  } catch (const c10::Error&) {
    throw UserError("The checkpoint " + path.string() + " is corrupt or not an mmlab checkpoint.",
                    "Use an earlier checkpoint of the run.");
  }
  return load_archive(in, path, model, optimizer);
}

}  // namespace mmlab
