// SPDX-License-Identifier: GPL-3.0-or-later
// SentencePiece (Kudo & Richardson 2018) through Debian's libsentencepiece: training BPE models on
// the corpus, loading `.model` files.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <xxhash.h>

#include <deque>
#include <thread>
#include <unordered_map>

#include "core/data/tokenizer.h"
#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab::data {
namespace fs = std::filesystem;

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
  fs::path path;
  std::uint64_t hash = 0;
  std::int32_t eot = -1;
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

class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(std::deque<std::string> lines) : lines_(std::move(lines)) {}
  bool done() const override { return lines_.empty(); }
  void Next() override { lines_.pop_front(); }
  const std::string& value() const override { return lines_.front(); }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::deque<std::string> lines_;
};

std::unique_ptr<SentencePieceTokenizer::Impl> impl_from_proto(const std::string& serialized,
                                                              const fs::path& path) {
  auto impl = std::make_unique<SentencePieceTokenizer::Impl>();
  auto status = impl->processor.LoadFromSerializedProto(serialized);
  if (!status.ok()) {
    throw UserError(
        "The SentencePiece model " + path.string() + " is not valid (" + status.ToString() + ").",
        "Train it again (delete the file) or point tokenizer_path at a .model file "
        "written by SentencePiece.");
  }
  impl->path = path;
  impl->hash = XXH64(serialized.data(), serialized.size(), 0x7370);
  impl->eot = impl->processor.eos_id();
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
        while (cut < end && cut > pos && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
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
  // A fixed seed makes the sampled training sentences, and so the model, reproducible.
  sentencepiece::SetRandomGeneratorSeed(20240520);
  LineIterator iterator(std::move(lines));
  std::string serialized;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator, &serialized);
  if (!status.ok()) {
    throw UserError("Cannot train a SentencePiece model with vocab_size " +
                        std::to_string(vocab_size) + " on this corpus (" + status.ToString() + ").",
                    "Change the data config's vocab_size (" +
                        std::to_string(kByteFallbackMinVocab) +
                        " or more keeps every byte encodable; a small corpus needs a small "
                        "vocabulary).");
  }
  auto impl = impl_from_proto(serialized, model_out);
  fs::create_directories(model_out.parent_path());
  write_file_atomically(model_out, serialized);
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(impl)));
}

std::vector<std::int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto status = impl_->processor.Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!status.ok()) {
    throw UserError("SentencePiece cannot encode the text (" + status.ToString() + ").",
                    "Check that the text is valid UTF-8.");
  }
  return std::vector<std::int32_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  const int n = impl_->processor.GetPieceSize();
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
  auto status = impl_->processor.Decode(kept, &out);
  if (!status.ok()) {
    throw UserError("SentencePiece cannot decode the ids (" + status.ToString() + ").",
                    "Decode ids produced by the same tokenizer.");
  }
  return out;
}

std::int32_t SentencePieceTokenizer::vocab_size() const {
  return impl_->processor.GetPieceSize();
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
