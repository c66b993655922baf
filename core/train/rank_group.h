// SPDX-License-Identifier: GPL-3.0-or-later
// The ranks of a data-parallel run, on PyTorch's own distributed engine (c10d): rank 0 hosts a
// TCPStore that every rank connects to (the rendezvous, once per command), and each training
// session opens a process group over it — Gloo on the CPU, NCCL on CUDA.
//
// Every failure of the engine (a rank that died, one that did not answer within the timeout, a
// port in use) becomes a RankLostError: one sentence, no library text.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/train/rank_env.h"
#include "core/util/error.h"

namespace mmlab {

/// The run lost a rank, or could not reach one. Exit code 1 (the run failed; it is resumable).
class RankLostError : public UserError {
 public:
  RankLostError(const std::string& message, const std::string& hint)
      : UserError(message, hint, kExitFailure) {}
};

/// A collective that was started and not yet waited for.
class PendingCollective {
 public:
  PendingCollective();
  ~PendingCollective();
  PendingCollective(PendingCollective&&) noexcept;
  PendingCollective& operator=(PendingCollective&&) noexcept;
  /// Blocks until it completed (a RankLostError when a rank failed or the timeout passed).
  void wait();

 private:
  friend class RankGroup;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One process group: the collectives of one training session.
class RankGroup {
 public:
  ~RankGroup();
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_root() const { return rank_ == 0; }
  /// The device every tensor given to a collective lives on (Gloo: CPU, NCCL: this rank's GPU).
  const torch::Device& device() const { return device_; }
  std::chrono::seconds timeout() const { return timeout_; }

  /// Starts summing `t` (contiguous, on device()) over the ranks, in place.
  PendingCollective start_sum(torch::Tensor t, const std::string& what);
  void sum(torch::Tensor t, const std::string& what);
  /// Rank 0's `t` (same shape and dtype everywhere) into every rank's `t`.
  void broadcast(torch::Tensor t, const std::string& what);
  /// Rank 0's `bytes` on every rank (the others' argument is ignored).
  std::string broadcast_bytes(const std::string& bytes, const std::string& what);

  /// After a RankLostError the engine's threads may still wait on the lost peer: the group is
  /// then abandoned (never destroyed) so that leaving the process cannot hang on it.
  void abandon();

 private:
  friend class Rendezvous;
  friend class PendingCollective;
  RankGroup() = default;
  [[noreturn]] void lost(const std::string& what, const std::exception& e) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_size_ = 1;
  torch::Device device_{torch::kCPU};
  std::chrono::seconds timeout_{0};
};

/// The rendezvous of a data-parallel command (distributed() of its RankEnv is true). Rank 0
/// posts small messages (a run's config) that the others await: an await has no deadline but
/// rank 0's death, which ends it at once; rank 0's waits for the others are bounded.
class Rendezvous {
 public:
  /// Connects every rank to rank 0's store (rank 0 waits for all of them, `connect_timeout` at
  /// most). A port in use or an unreachable rank 0 is a RankLostError saying which.
  explicit Rendezvous(const RankEnv& env,
                      std::chrono::seconds connect_timeout = std::chrono::seconds(300));
  ~Rendezvous();

  const RankEnv& env() const { return env_; }

  /// Rank 0: publishes `text` under `key` (each key once).
  void post(const std::string& key, const std::string& text);
  /// Waits for `key` (posted by another rank) and returns its text; `timeout` zero = as long as
  /// the poster lives.
  std::string await(const std::string& key, std::chrono::seconds timeout = {});

  /// A process group named `name` (unique per command) on `device`; every collective fails after
  /// `timeout` without an answer.
  std::unique_ptr<RankGroup> open_group(const std::string& name, const torch::Device& device,
                                        std::chrono::seconds timeout);

  /// Numbers the training sessions of this command (0, 1, ...), the same on every rank.
  int next_session() { return sessions_++; }
  int sessions() const { return sessions_; }

  /// The text under `key` if some rank posted it by now (never waits).
  std::optional<std::string> peek(const std::string& key);

  /// This process lost a rank (a RankLostError): rank 0 then does not wait for the others to
  /// read its last message.
  void mark_lost() { lost_ = true; }
  bool lost() const { return lost_; }

  /// Like RankGroup::abandon(), for the store.
  void abandon();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  RankEnv env_;
  int sessions_ = 0;
  bool lost_ = false;
};

}  // namespace mmlab
