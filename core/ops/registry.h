// SPDX-License-Identifier: GPL-3.0-or-later
// The op registry: for every op a table of implementations {name, device, why_not(args), fn}.
// The reference (plain tensor code, any device) is always first and always supports everything;
// kernels/ adds faster ones through mmlab::kernels::register_all(). A call picks, in this order:
//   - the implementation the thread's OpsChoice names for the op ("reference" or a name), or
//   - with "auto", the most recently added implementation whose device matches the call and whose
//     why_not(args) is empty, else the reference (the reason is logged once per op and reason).
// No static initialisers register anything: a static library would drop them silently.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/config/ops_config.h"
#include "core/util/error.h"

namespace mmlab::ops {

/// What every op's argument struct carries besides its tensors.
struct CallInfo {
  /// true when autograd will ask for a backward through this call
  bool needs_grad = false;
};

/// Which implementation each op uses in this thread: "auto", "reference", or an implementation
/// name, for all ops at once or per op: an experiment's `train.ops` as it is.
using OpsChoice = OpsConfig;

/// The thread's current choice; a run sets it for its duration with ScopedOpsChoice.
OpsChoice& current_choice();

class ScopedOpsChoice {
 public:
  explicit ScopedOpsChoice(OpsChoice choice) : saved_(current_choice()) {
    current_choice() = std::move(choice);
  }
  ~ScopedOpsChoice() { current_choice() = saved_; }
  ScopedOpsChoice(const ScopedOpsChoice&) = delete;
  ScopedOpsChoice& operator=(const ScopedOpsChoice&) = delete;

 private:
  OpsChoice saved_;
};

/// One line per op for logs and the run's row: op name -> implementation actually used by the
/// most recent call in this process (only ops that were called).
std::map<std::string, std::string> used_implementations();
void note_used(const std::string& op, const std::string& impl);
/// Forgets what used_implementations() reports (before a measurement of one choice).
void clear_used_implementations();
/// Logs `line` to stderr once per process (the fallback notes of `auto`).
void note_once(const std::string& line);

template <class Args, class Result>
class Registry {
 public:
  using Fn = std::function<Result(const Args&)>;
  /// "" when the implementation can run `args`; else the unsupported property in a few words
  /// ("d_state 128 > 64", "dtype Half", "u not contiguous along L").
  using WhyNot = std::function<std::string(const Args&)>;
  struct Impl {
    std::string name;
    torch::DeviceType device = torch::kCPU;  // ignored for the reference (runs anywhere)
    WhyNot why_not;
    Fn fn;
  };

  Registry(std::string op, Fn reference) : op_(std::move(op)) {
    impls_.push_back({"reference", torch::kCPU, [](const Args&) { return std::string(); },
                      std::move(reference)});
  }

  const std::string& op() const { return op_; }

  /// Adds or replaces (same name) an implementation; later ones are preferred by "auto".
  void add(Impl impl) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& i : impls_) {
      if (i.name == impl.name) {
        i = std::move(impl);
        return;
      }
    }
    impls_.push_back(std::move(impl));
  }

  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& i : impls_) out.push_back(i.name);
    return out;
  }

  bool has(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& i : impls_)
      if (i.name == name) return true;
    return false;
  }

  /// The implementation called `name`, if there is one.
  std::optional<Impl> find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& i : impls_)
      if (i.name == name) return i;
    return std::nullopt;
  }

  /// Why `name` cannot run `args` on `device` ("" if it can); for validation before a run.
  std::string why_not(const std::string& name, torch::DeviceType device, const Args& args) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& i : impls_) {
      if (i.name != name) continue;
      if (i.name != "reference" && i.device != device)
        return "runs on " + c10::DeviceTypeName(i.device, true) + " only";
      return i.why_not(args);
    }
    return "no such implementation";
  }

  /// The implementation a call with `args` on `device` gets under the thread's choice.
  /// Throws UserError when an explicitly chosen implementation cannot run the call.
  Impl pick(torch::DeviceType device, const Args& args) const {
    const std::string& choice = current_choice().for_op(op_);
    std::lock_guard<std::mutex> lock(mu_);
    if (choice != "auto") {
      for (const auto& i : impls_) {
        if (i.name != choice) continue;
        std::string why = (i.name != "reference" && i.device != device)
                              ? "it runs on " + c10::DeviceTypeName(i.device, true) + " only"
                              : i.why_not(args);
        if (!why.empty()) {
          throw UserError(
              "Op '" + op_ + "' cannot use implementation '" + choice + "': " + why + ".",
              "Set train.ops to \"auto\" or \"reference\" for this run.");
        }
        return i;
      }
      throw UserError("Op '" + op_ + "' has no implementation '" + choice + "'.",
                      "Choose one of: auto, " + join_names() + ".");
    }
    std::string fallback_reason;
    for (auto it = impls_.rbegin(); it != impls_.rend(); ++it) {
      if (it->name == "reference") break;
      if (it->device != device) continue;
      std::string why = it->why_not(args);
      if (why.empty()) return *it;
      if (fallback_reason.empty()) fallback_reason = it->name + ": " + why;
    }
    if (!fallback_reason.empty()) {
      note_once("mmlab: op " + op_ + " uses its reference implementation (" + fallback_reason +
                ")");
    }
    return impls_.front();
  }

  /// Picks and runs; records the implementation used.
  Result operator()(torch::DeviceType device, const Args& args) const {
    Impl impl = pick(device, args);
    note_used(op_, impl.name);
    return impl.fn(args);
  }

 private:
  std::string join_names() const {
    std::string s;
    for (const auto& i : impls_) s += (s.empty() ? "" : ", ") + i.name;
    return s;
  }

  std::string op_;
  mutable std::mutex mu_;
  std::vector<Impl> impls_;
};

}  // namespace mmlab::ops
