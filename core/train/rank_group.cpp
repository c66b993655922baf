// SPDX-License-Identifier: GPL-3.0-or-later
// Before any include: the c10d part of the compatibility header is wanted here.
#define MMLAB_COMPAT_C10D 1
#include "core/train/rank_group.h"
#include "core/ops/torch_compat.h"

#include <cstdio>
#include <cstdlib>

#include "core/train/failure.h"

namespace mmlab {

namespace {

// "as long as the poster lives": a rank 0 that dies closes the store's socket, which ends the
// wait at once; only a rank 0 that hangs without dying is waited for this long.
constexpr std::chrono::hours kPosterLifetime{24 * 30};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::string contains_any(const std::string& text, std::initializer_list<const char*> words) {
  for (const char* w : words)
    if (text.find(w) != std::string::npos) return w;
  return "";
}

void show_details(const std::exception& e) {
  if (debug_enabled()) std::fprintf(stderr, "mmlab: details: %s\n", e.what());
}

}  // namespace

struct PendingCollective::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  const RankGroup* group = nullptr;
  std::string what;
};

PendingCollective::PendingCollective() = default;
PendingCollective::~PendingCollective() = default;
PendingCollective::PendingCollective(PendingCollective&&) noexcept = default;
PendingCollective& PendingCollective::operator=(PendingCollective&&) noexcept = default;

struct RankGroup::Impl {
  c10::intrusive_ptr<compat::CollectiveBackend> backend;
};

RankGroup::~RankGroup() = default;

void RankGroup::lost(const std::string& what, const std::exception& e) const {
  show_details(e);
  throw RankLostError(
      "Rank " + std::to_string(rank_) + " of " + std::to_string(world_size_) +
          " lost the other ranks while " + what +
          ": one of them failed, was stopped, or did not "
          "answer within " +
          std::to_string(timeout_.count()) + " s (--rank-timeout).",
      "The failed rank's own message says why; resume the run with `mmlab train --resume RUN`.");
}

void PendingCollective::wait() {
  if (!impl_ || !impl_->work) return;
  try {
    impl_->work->wait();
  } catch (const std::exception& e) {
    impl_->work.reset();
    impl_->group->lost(impl_->what, e);
  }
  impl_->work.reset();
}

PendingCollective RankGroup::start_sum(torch::Tensor t, const std::string& what) {
  PendingCollective p;
  p.impl_ = std::make_unique<PendingCollective::Impl>();
  p.impl_->group = this;
  p.impl_->what = what;
  std::vector<at::Tensor> tensors{std::move(t)};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  try {
    p.impl_->work = impl_->backend->allreduce(tensors, opts);
  } catch (const std::exception& e) {
    lost(what, e);
  }
  return p;
}

void RankGroup::sum(torch::Tensor t, const std::string& what) {
  start_sum(std::move(t), what).wait();
}

void RankGroup::broadcast(torch::Tensor t, const std::string& what) {
  std::vector<at::Tensor> tensors{std::move(t)};
  c10d::BroadcastOptions opts;
  opts.rootRank = 0;
  try {
    impl_->backend->broadcast(tensors, opts)->wait();
  } catch (const std::exception& e) {
    lost(what, e);
  }
}

std::string RankGroup::broadcast_bytes(const std::string& bytes, const std::string& what) {
  auto on_device = torch::TensorOptions().device(device_);
  auto length =
      torch::tensor({static_cast<int64_t>(is_root() ? bytes.size() : 0)}, torch::kLong).to(device_);
  broadcast(length, what);
  const int64_t n = length.to(torch::kCPU).item<int64_t>();
  torch::Tensor buffer;
  if (is_root()) {
    buffer =
        torch::from_blob(const_cast<char*>(bytes.data()), {n}, torch::kUInt8).to(device_, true);
    if (device_.is_cpu()) buffer = buffer.clone();  // from_blob aliases bytes; keep it untouched
  } else {
    buffer = torch::empty({n}, on_device.dtype(torch::kUInt8));
  }
  broadcast(buffer, what);
  auto host = buffer.to(torch::kCPU).contiguous();
  return std::string(static_cast<const char*>(host.data_ptr()), static_cast<size_t>(n));
}

void RankGroup::abandon() {
  // Deliberately leaked: see the header.
  new c10::intrusive_ptr<compat::CollectiveBackend>(std::move(impl_->backend));
}

struct Rendezvous::Impl {
  c10::intrusive_ptr<c10d::Store> store;
};

Rendezvous::Rendezvous(const RankEnv& env, std::chrono::seconds connect_timeout)
    : impl_(std::make_unique<Impl>()), env_(env) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(env.master_port);
  opts.isServer = env.is_root();
  opts.numWorkers = static_cast<size_t>(env.world_size);
  opts.waitWorkers = true;
  opts.timeout = connect_timeout;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    show_details(e);
    const std::string what = e.what();
    if (env.is_root() && !contains_any(what, {"in use", "EADDRINUSE"}).empty()) {
      throw RankLostError("The rendezvous port " + std::to_string(env.master_port) +
                              " of this data-parallel run is in use on this host.",
                          "Set MASTER_PORT (or mmlab launch --master-port) to a free port.");
    }
    if (env.is_root()) {
      throw RankLostError(
          "Rank 0 waited " + std::to_string(connect_timeout.count()) + " s at " + where +
              " for the other " + std::to_string(env.world_size - 1) +
              " ranks of the run, and not all of them came.",
          "Start every rank (under Slurm through srun, so that each task is one rank), with the "
          "same MASTER_ADDR and MASTER_PORT.");
    }
    throw RankLostError("Rank " + std::to_string(env.rank) + " could not reach rank 0's " +
                            "rendezvous at " + where + " within " +
                            std::to_string(connect_timeout.count()) + " s.",
                        "Check MASTER_ADDR and MASTER_PORT, and that rank 0 started.");
  }
}

Rendezvous::~Rendezvous() = default;

void Rendezvous::post(const std::string& key, const std::string& text) {
  try {
    impl_->store->set(key, std::vector<uint8_t>(text.begin(), text.end()));
  } catch (const std::exception& e) {
    show_details(e);
    throw RankLostError("Rank " + std::to_string(env_.rank) + " lost rank 0's rendezvous store.",
                        "Rank 0's own message says why.");
  }
}

std::string Rendezvous::await(const std::string& key, std::chrono::seconds timeout) {
  const std::chrono::milliseconds limit =
      timeout.count() > 0 ? std::chrono::milliseconds(timeout) : kPosterLifetime;
  try {
    impl_->store->wait({key}, limit);
    const auto value = impl_->store->get(key);
    return std::string(value.begin(), value.end());
  } catch (const std::exception& e) {
    show_details(e);
    if (env_.is_root()) {
      throw RankLostError("Rank 0 waited " + std::to_string(timeout.count()) +
                              " s for the other ranks to get ready, and not all of them did.",
                          "Their own messages say why.");
    }
    throw RankLostError(
        "Rank " + std::to_string(env_.rank) + " lost rank 0: it failed or was stopped.",
        "Rank 0's own message says why.");
  }
}

std::optional<std::string> Rendezvous::peek(const std::string& key) {
  try {
    if (!impl_->store->check({key})) return std::nullopt;
    const auto value = impl_->store->get(key);
    return std::string(value.begin(), value.end());
  } catch (const std::exception& e) {
    show_details(e);
    return std::nullopt;
  }
}

std::unique_ptr<RankGroup> Rendezvous::open_group(const std::string& name,
                                                  const torch::Device& device,
                                                  std::chrono::seconds timeout) {
  std::unique_ptr<RankGroup> g(new RankGroup());
  g->impl_ = std::make_unique<RankGroup::Impl>();
  g->rank_ = env_.rank;
  g->world_size_ = env_.world_size;
  g->device_ = device;
  g->timeout_ = timeout;
  auto store = c10::make_intrusive<c10d::PrefixStore>(name, impl_->store);
  const std::chrono::milliseconds ms(timeout);
  try {
    if (device.is_cuda()) {
#if defined(MMLAB_HAVE_NCCL)
      // A collective's wait() then blocks until it completed and throws when the timeout passed
      // or a peer failed (the RankLostError sentence), instead of leaving PyTorch's watchdog to
      // abort the process. The host waits for the all-reduces only where the step needs their
      // results anyway (before clipping, for the step's metrics).
      ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
      g->impl_->backend = compat::make_nccl_backend(store, env_.rank, env_.world_size, ms);
#else
      throw UserError(
          "This mmlab was built without NCCL, which data-parallel training on GPUs needs.",
          "Build it against a CUDA LibTorch 2.x with NCCL's header (see docs/distributed.md), or "
          "train on the CPU.",
          kExitNoResource);
#endif
    } else {
#if defined(MMLAB_HAVE_GLOO)
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      g->impl_->backend = compat::make_gloo_backend(
          store, env_.rank, env_.world_size, ms, interface ? interface : "",
          is_loopback(env_.master_addr) ? "127.0.0.1" : "");
#else
      throw UserError(
          "This mmlab was built without Gloo, which data-parallel training on the CPU needs.",
          "Build it with Gloo's headers installed (Debian: libgloo-dev), or train on GPUs.",
          kExitNoResource);
#endif
    }
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    g->lost("connecting the process group", e);
  }
  return g;
}

void Rendezvous::abandon() {
  new c10::intrusive_ptr<c10d::Store>(std::move(impl_->store));
}

}  // namespace mmlab
