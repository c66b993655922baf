// SPDX-License-Identifier: GPL-3.0-or-later
// Averages the gradients of a model over the ranks of a data-parallel run, overlapped with the
// backward pass (the scheme of PyTorch's DistributedDataParallel reducer, in a few lines):
//   * the parameters are cut into buckets of about 25 MB, in reverse order of model->parameters()
//     (the order in which the backward pass produces their gradients);
//   * a hook after each parameter's gradient accumulation counts it as ready; once every gradient
//     of a bucket is, the bucket is copied into one flat buffer, divided by the world size and
//     its all-reduce starts — while the backward pass goes on with the earlier layers;
//   * buckets start strictly in order, on every rank the same: collectives must pair up;
//   * finish() starts what is left (a parameter that got no gradient in this step, e.g. an
//     expert no token reached, counts as zeros), waits for all and writes the averages back.
// With gradient accumulation only the last micro-batch's backward is reduced (arm() before it).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/train/rank_group.h"

namespace mmlab {

class GradientReducer {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 * 1024 * 1024;

  GradientReducer(std::vector<torch::Tensor> params, RankGroup& group,
                  int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// The next backward pass produces the step's final gradients: reduce them as they come.
  void arm();
  /// After that backward pass: every gradient averaged over the ranks (a RankLostError when a
  /// rank was lost).
  void finish();

  size_t buckets() const { return buckets_.size(); }
  /// Buckets of the last step whose all-reduce started inside the backward pass (not in
  /// finish()): the overlap.
  size_t started_in_backward() const { return started_in_backward_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    torch::Tensor flat;  // (numel of all its gradients)
    size_t missing = 0;  // gradients not yet ready in this backward pass
    PendingCollective pending;
    bool started = false;
  };
  class ReadyHook;

  void ready(size_t param);  // from the autograd engine
  void start(size_t bucket);

  std::vector<torch::Tensor> params_;
  RankGroup& group_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  std::vector<char> seen_;  // per parameter: ready in this backward pass
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;
  std::mutex mutex_;
  bool armed_ = false;
  size_t next_ = 0;  // the next bucket to start
  size_t started_in_backward_ = 0;
  std::unique_ptr<RankLostError> failure_;  // a start that failed inside the backward pass
};

}  // namespace mmlab
