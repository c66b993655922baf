// SPDX-License-Identifier: GPL-3.0-or-later
// mmlab_spm: SentencePiece behind a C interface (see spm_api.h for why it is a separate module).
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/data/spm/spm_api.h"

namespace {

void set_error(char* err, size_t size, const std::string& message) {
  if (!err || size == 0) return;
  std::strncpy(err, message.c_str(), size - 1);
  err[size - 1] = '\0';
}

class LineIterator : public sentencepiece::SentenceIterator {
 public:
  LineIterator(const char* const* lines, const size_t* lengths, size_t n)
      : lines_(lines), lengths_(lengths), n_(n) {
    load();
  }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    ++i_;
    load();
  }
  const std::string& value() const override { return current_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (i_ < n_) current_.assign(lines_[i_], lengths_[i_]);
  }
  const char* const* lines_;
  const size_t* lengths_;
  size_t n_;
  size_t i_ = 0;
  std::string current_;
};

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* mmlab_spm_load(const char* model, size_t size,
                                                            char* err, size_t err_size) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  auto status = processor->LoadFromSerializedProto(absl::string_view(model, size));
  if (!status.ok()) {
    set_error(err, err_size, status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void mmlab_spm_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

__attribute__((visibility("default"))) int mmlab_spm_piece_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

__attribute__((visibility("default"))) int mmlab_spm_eos_id(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->eos_id();
}

__attribute__((visibility("default"))) int mmlab_spm_encode(void* handle, const char* text,
                                                            size_t n, mmlab_spm_ids_sink sink,
                                                            void* ctx, char* err, size_t err_size) {
  std::vector<int> ids;
  auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(
      absl::string_view(text, n), &ids);
  if (!status.ok()) {
    set_error(err, err_size, status.ToString());
    return -1;
  }
  std::vector<int32_t> out(ids.begin(), ids.end());
  sink(ctx, out.data(), out.size());
  return 0;
}

__attribute__((visibility("default"))) int mmlab_spm_decode(void* handle, const int32_t* ids,
                                                            size_t n, mmlab_spm_bytes_sink sink,
                                                            void* ctx, char* err, size_t err_size) {
  std::vector<int> in(ids, ids + n);
  std::string text;
  auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(in, &text);
  if (!status.ok()) {
    set_error(err, err_size, status.ToString());
    return -1;
  }
  sink(ctx, text.data(), text.size());
  return 0;
}

__attribute__((visibility("default"))) int mmlab_spm_train(const char* const* keys,
                                                           const char* const* values, size_t n_args,
                                                           const char* const* lines,
                                                           const size_t* lengths, size_t n_lines,
                                                           uint32_t seed, mmlab_spm_bytes_sink sink,
                                                           void* ctx, char* err, size_t err_size) {
  std::unordered_map<std::string, std::string> args;
  for (size_t i = 0; i < n_args; ++i) args[keys[i]] = values[i];
  sentencepiece::SetRandomGeneratorSeed(seed);
  LineIterator iterator(lines, lengths, n_lines);
  std::string serialized;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator, &serialized);
  if (!status.ok()) {
    set_error(err, err_size, status.ToString());
    return -1;
  }
  sink(ctx, serialized.data(), serialized.size());
  return 0;
}

}  // extern "C"
