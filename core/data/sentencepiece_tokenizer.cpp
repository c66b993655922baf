// SPDX-License-Identifier: GPL-3.0-or-later
// SentencePiece (Kudo & Richardson 2018) through Debian's libsentencepiece: training BPE models on
// the corpus, loading `.model` files. SentencePiece itself runs inside the mmlab_spm module (see
// spm/spm_api.h for why); this file opens it and calls its C interface.
#include <dlfcn.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/data/spm/spm_api.h"
#include "core/data/tokenizer.h"
#include "core/util/error.h"
#include "core/util/fs.h"
#include "core/util/install_paths.h"
#include "core/util/utf8.h"

namespace mmlab::data {
namespace fs = std::filesystem;

namespace {

constexpr const char* kModuleName = "libmmlab_spm.so";

// The module's entry points, resolved once per process.
struct SpmModule {
  mmlab_spm_load_fn load = nullptr;
  mmlab_spm_free_fn free = nullptr;
  mmlab_spm_piece_size_fn piece_size = nullptr;
  mmlab_spm_eos_id_fn eos_id = nullptr;
  mmlab_spm_encode_fn encode = nullptr;
  mmlab_spm_decode_fn decode = nullptr;
  mmlab_spm_train_fn train = nullptr;
};

std::vector<fs::path> module_candidates() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("MMLAB_SPM_MODULE"); env && *env) out.emplace_back(env);
  for (const fs::path& dir : module_dir_candidates()) out.push_back(dir / kModuleName);
  return out;
}

const SpmModule& spm_module() {
  static std::once_flag once;
  static SpmModule module;
  static std::string failure;
  std::call_once(once, [] {
    void* handle = nullptr;
    std::string tried;
    for (const fs::path& p : module_candidates()) {
      tried += (tried.empty() ? "" : ", ") + p.string();
      std::error_code ec;
      if (!fs::exists(p, ec)) continue;
      // RTLD_LOCAL | RTLD_DEEPBIND: SentencePiece's private protobuf binds to itself only.
      handle = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (!handle) {
        failure =
            "The SentencePiece module " + p.string() + " cannot be loaded (" + ::dlerror() + ").";
        return;
      }
      break;
    }
    if (!handle) {
      failure = "The SentencePiece module " + std::string(kModuleName) +
                " was not found (looked at " + tried + ").";
      return;
    }
    auto sym = [&](const char* name) {
      void* f = ::dlsym(handle, name);
      if (!f) failure = "The SentencePiece module lacks " + std::string(name) + ".";
      return f;
    };
    module.load = reinterpret_cast<mmlab_spm_load_fn>(sym("mmlab_spm_load"));
    module.free = reinterpret_cast<mmlab_spm_free_fn>(sym("mmlab_spm_free"));
    module.piece_size = reinterpret_cast<mmlab_spm_piece_size_fn>(sym("mmlab_spm_piece_size"));
    module.eos_id = reinterpret_cast<mmlab_spm_eos_id_fn>(sym("mmlab_spm_eos_id"));
    module.encode = reinterpret_cast<mmlab_spm_encode_fn>(sym("mmlab_spm_encode"));
    module.decode = reinterpret_cast<mmlab_spm_decode_fn>(sym("mmlab_spm_decode"));
    module.train = reinterpret_cast<mmlab_spm_train_fn>(sym("mmlab_spm_train"));
  });
  if (!failure.empty()) {
    throw UserError(failure,
                    "Rebuild mmlab (target mmlab_spm), or set MMLAB_SPM_MODULE to the "
                    "module's path.");
  }
  return module;
}

}  // namespace

struct SentencePieceTokenizer::Impl {
  void* processor = nullptr;  // owned; freed through the module
  fs::path path;
  std::uint64_t hash = 0;
  std::int32_t eot = -1;
  std::int32_t pieces = 0;
  ~Impl() {
    if (processor) spm_module().free(processor);
  }
};

namespace {

// SentencePiece trains on sentences; it would drop lines longer than max_sentence_length, so long
// lines are cut at a UTF-8 boundary near this size.
constexpr std::size_t kMaxSentenceBytes = 8192;
// Sentences the trainer samples at most: BPE training time grows with the input, and a couple of
// million lines already give stable merges.
constexpr int kMaxTrainingSentences = 2'000'000;
// Below this vocabulary the 256 byte-fallback pieces would not fit next to the characters.
constexpr int kByteFallbackMinVocab = 512;

std::unique_ptr<SentencePieceTokenizer::Impl> impl_from_proto(const std::string& serialized,
                                                              const fs::path& path) {
  const SpmModule& spm = spm_module();
  auto impl = std::make_unique<SentencePieceTokenizer::Impl>();
  char err[512] = "";
  impl->processor = spm.load(serialized.data(), serialized.size(), err, sizeof err);
  if (!impl->processor) {
    throw UserError(
        "The SentencePiece model " + path.string() + " is not valid (" + std::string(err) + ").",
        "Train it again (delete the file) or point tokenizer_path at a .model file "
        "written by SentencePiece.");
  }
  impl->path = path;
  impl->hash = XXH64(serialized.data(), serialized.size(), 0x7370);
  impl->eot = spm.eos_id(impl->processor);
  impl->pieces = spm.piece_size(impl->processor);
  if (impl->eot < 0) {
    throw UserError("The SentencePiece model " + path.string() + " has no end-of-sentence piece.",
                    "Use a model trained with an eos piece (the default, </s>).");
  }
  return impl;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const fs::path& model) {
  const std::string serialized = read_file(model);
  return std::unique_ptr<SentencePieceTokenizer>(
      new SentencePieceTokenizer(impl_from_proto(serialized, model)));
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::train(
    const std::function<void(const std::function<void(std::string_view)>&)>& for_each_text,
    int vocab_size, const fs::path& model_out) {
  std::deque<std::string> lines;
  for_each_text([&](std::string_view text) {
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t nl = text.find('\n', pos);
      std::size_t end = nl == std::string_view::npos ? text.size() : nl;
      while (pos < end) {
        std::size_t cut = std::min(end, pos + kMaxSentenceBytes);
        // Back up to the start of a UTF-8 character.
        while (cut < end && cut > pos && is_utf8_continuation(text[cut])) {
          --cut;
        }
        std::string_view line = text.substr(pos, cut - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty()) lines.emplace_back(line);
        pos = cut;
      }
      pos = end + 1;
    }
  });
  if (lines.empty()) {
    throw UserError("There is no text to train a SentencePiece model on.",
                    "Check that the corpus has documents.");
  }
  const bool byte_fallback = vocab_size >= kByteFallbackMinVocab;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  // Identity normalization, no dummy prefix and no whitespace cleanup keep decode(encode(x)) == x;
  // "\n" is a user-defined piece because training sentences are lines and never contain it.
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      // A corpus with fewer possible merges gets a smaller vocabulary instead of an error;
      // vocab_size() reports what was trained.
      {"hard_vocab_limit", "false"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"user_defined_symbols", "\n"},
      {"byte_fallback", byte_fallback ? "true" : "false"},
      {"character_coverage", byte_fallback ? "0.9995" : "1.0"},
      {"max_sentence_length", std::to_string(kMaxSentenceBytes + 16)},
      {"input_sentence_size", std::to_string(kMaxTrainingSentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(threads)},
      {"minloglevel", "2"},
  };
  std::vector<const char*> keys, values, line_ptrs;
  std::vector<size_t> lengths;
  for (const auto& [k, v] : args) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  for (const auto& line : lines) {
    line_ptrs.push_back(line.data());
    lengths.push_back(line.size());
  }
  std::string serialized;
  char err[512] = "";
  // A fixed seed makes the sampled training sentences, and so the model, reproducible.
  const int rc = spm_module().train(
      keys.data(), values.data(), keys.size(), line_ptrs.data(), lengths.data(), line_ptrs.size(),
      20240520,
      [](void* ctx, const char* data, size_t n) {
        static_cast<std::string*>(ctx)->assign(data, n);
      },
      &serialized, err, sizeof err);
  if (rc != 0) {
    throw UserError("Cannot train a SentencePiece model with vocab_size " +
                        std::to_string(vocab_size) + " on this corpus (" + std::string(err) + ").",
                    "Change the data config's vocab_size (" +
                        std::to_string(kByteFallbackMinVocab) +
                        " or more keeps every byte encodable; a small corpus needs a small "
                        "vocabulary).");
  }
  auto impl = impl_from_proto(serialized, model_out);
  std::error_code ec;  // a folder that cannot be made is reported by the write, naming the file
  fs::create_directories(model_out.parent_path(), ec);
  write_file_atomically(model_out, serialized);
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(impl)));
}

std::vector<std::int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  char err[512] = "";
  const int rc = spm_module().encode(
      impl_->processor, text.data(), text.size(),
      [](void* ctx, const std::int32_t* data, size_t n) {
        static_cast<std::vector<std::int32_t>*>(ctx)->assign(data, data + n);
      },
      &ids, err, sizeof err);
  if (rc != 0) {
    throw UserError("SentencePiece cannot encode the text (" + std::string(err) + ").",
                    "Check that the text is valid UTF-8.");
  }
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::vector<std::int32_t> kept;
  kept.reserve(ids.size());
  const int n = impl_->pieces;
  for (std::int32_t id : ids) {
    if (id < 0 || id >= n) {
      throw UserError("The token id " + std::to_string(id) +
                          " is outside the SentencePiece vocabulary of " + std::to_string(n) +
                          " ids.",
                      "Decode ids produced by the same tokenizer.");
    }
    if (id != impl_->eot) kept.push_back(id);
  }
  std::string out;
  char err[512] = "";
  const int rc = spm_module().decode(
      impl_->processor, kept.data(), kept.size(),
      [](void* ctx, const char* data, size_t len) {
        static_cast<std::string*>(ctx)->assign(data, len);
      },
      &out, err, sizeof err);
  if (rc != 0) {
    throw UserError("SentencePiece cannot decode the ids (" + std::string(err) + ").",
                    "Decode ids produced by the same tokenizer.");
  }
  return out;
}

std::int32_t SentencePieceTokenizer::vocab_size() const {
  return impl_->pieces;
}
std::int32_t SentencePieceTokenizer::eot_id() const {
  return impl_->eot;
}
std::uint64_t SentencePieceTokenizer::content_hash() const {
  return impl_->hash;
}
TokenizerSpec SentencePieceTokenizer::spec() const {
  return {"sentencepiece", impl_->path};
}

}  // namespace mmlab::data
