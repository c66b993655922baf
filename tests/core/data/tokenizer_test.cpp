// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <unordered_map>

#include "core/util/error.h"
#include "data_test_support.h"

namespace mmlab::data {
namespace {

using test::write_text;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Ids = std::vector<std::int32_t>;
using namespace std::string_literals;

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

// --- byte ----------------------------------------------------------------------------------------

TEST(VocabularyTest, TheEstimateIsWhatTheTokenizerHas) {
  // The studio's parameter read-outs use expected_vocab_size before any tokenizer exists.
  EXPECT_EQ(expected_vocab_size("byte", 0), ByteTokenizer().vocab_size());
  EXPECT_EQ(expected_vocab_size("byte", 0), 257);
  EXPECT_EQ(expected_vocab_size("gpt2", 0), 50257);
  EXPECT_EQ(expected_vocab_size("sentencepiece", 8192), 8192);
}

TEST(ByteTokenizerTest, RoundTripAndIds) {
  ByteTokenizer t;
  const std::string text = "h\xC3\xA9\0\xFF"s;
  const Ids ids = t.encode(text);
  EXPECT_THAT(ids, ElementsAre(104, 0xC3, 0xA9, 0, 0xFF));
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_EQ(t.vocab_size(), 257);
  EXPECT_EQ(t.eot_id(), 256);
  EXPECT_EQ(t.decode({104, 256, 105}), "hi");
  EXPECT_THAT(message_of([&] { t.decode({257}); }), HasSubstr("token id 257 is outside"));
}

// --- GPT-2 pre-tokenization ----------------------------------------------------------------------

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (auto p : Gpt2Tokenizer::pretokenize(text)) out.emplace_back(p);
  return out;
}

TEST(Gpt2Pretokenize, MatchesTheRegexAlternatives) {
  EXPECT_THAT(pieces("Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(pieces("I'm don't they'll"), ElementsAre("I", "'m", " don", "'t", " they", "'ll"));
  EXPECT_THAT(pieces("a  b"), ElementsAre("a", " ", " b"));
  EXPECT_THAT(pieces("x   \n\ny"), ElementsAre("x", "   \n", "\n", "y"));
  EXPECT_THAT(pieces("end  "), ElementsAre("end", "  "));
  EXPECT_THAT(pieces("pi 3.14!!"), ElementsAre("pi", " 3", ".", "14", "!!"));
  EXPECT_THAT(pieces("caf\xC3\xA9 \xD0\x9C\xD0\xB8\xD1\x80"),  // café Мир
              ElementsAre("caf\xC3\xA9", " \xD0\x9C\xD0\xB8\xD1\x80"));
  EXPECT_THAT(pieces("'S"), ElementsAre("'", "S"));  // contractions are lower case only
  EXPECT_THAT(pieces(""), ElementsAre());
}

TEST(Gpt2Pretokenize, InvalidUtf8KeepsEveryByte) {
  const std::string text = "a\xFF\xFE b\xC3";
  std::string joined;
  for (auto p : Gpt2Tokenizer::pretokenize(text)) joined += p;
  EXPECT_EQ(joined, text);
}

// --- GPT-2 BPE on a tiny hand-made vocabulary
// -----------------------------------------------------

// GPT-2's byte→symbol table, written out independently of the implementation.
std::string byte_symbol(int b) {
  static const std::vector<int> table = [] {
    std::vector<int> t(256);
    int n = 0;
    for (int i = 0; i < 256; ++i) {
      bool printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174;
      t[i] = printable ? i : 256 + n++;
    }
    return t;
  }();
  int cp = table[b];
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Ids 0..255 are the bytes, then merges: h e, l l, he ll, hell o, Ġ w, o r, e l; eot last.
void write_tiny_bpe(const std::filesystem::path& dir, bool openai_layout) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"},        {"l", "l"}, {"he", "ll"}, {"hell", "o"},
      {"\xC4\xA0", "w"}, {"o", "r"}, {"e", "l"}};
  int id = 256;
  std::string merges_text = "#version: 0.2\n";
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    merges_text += a + " " + b + "\n";
  }
  vocab["<|endoftext|>"] = id;
  write_text(dir / (openai_layout ? "encoder.json" : "vocab.json"), vocab.dump());
  write_text(dir / (openai_layout ? "vocab.bpe" : "merges.txt"), merges_text);
}

TEST(Gpt2Bpe, TinyVocabularyMergesByRank) {
  test::TempDir dir;
  write_tiny_bpe(dir.path(), false);
  auto t = Gpt2Tokenizer::from_dir(dir.path());
  EXPECT_EQ(t->vocab_size(), 264);
  EXPECT_EQ(t->eot_id(), 263);
  EXPECT_THAT(t->encode("hello"), ElementsAre(259));
  EXPECT_THAT(t->encode("hell"), ElementsAre(258));
  // "h e" (rank 0) wins over "e l" (rank 6), so "hel" is he + l, never h + el.
  EXPECT_THAT(t->encode("hel"), ElementsAre(256, 'l'));
  EXPECT_THAT(t->encode(" world"), ElementsAre(260, 261, 'l', 'd'));
  EXPECT_THAT(t->encode("hello hello"), ElementsAre(259, ' ', 259));
  EXPECT_THAT(t->encode("\n"), ElementsAre('\n'));
  EXPECT_EQ(t->decode(t->encode("hello world, \xE2\x82\xAC 42\n")),
            "hello world, \xE2\x82\xAC 42\n");
  EXPECT_EQ(t->decode({259, 263, 259}), "hellohello");
}

TEST(Gpt2Bpe, BothFileLayoutsGiveTheSameTokenizer) {
  test::TempDir hf, openai;
  write_tiny_bpe(hf.path(), false);
  write_tiny_bpe(openai.path(), true);
  auto a = Gpt2Tokenizer::from_dir(hf.path());
  auto b = Gpt2Tokenizer::from_dir(openai.path());
  EXPECT_EQ(a->content_hash(), b->content_hash());
  EXPECT_EQ(a->encode("hello world"), b->encode("hello world"));
  EXPECT_NE(a->content_hash(), ByteTokenizer().content_hash());
  EXPECT_EQ(b->spec().kind, "gpt2");
  EXPECT_EQ(load_tokenizer(b->spec())->content_hash(), b->content_hash());
}

TEST(Gpt2Bpe, BadFilesAreUserErrorsNamingTheFile) {
  test::TempDir dir;
  EXPECT_THAT(message_of([&] { Gpt2Tokenizer::from_dir(dir / "none"); }),
              HasSubstr("The GPT-2 tokenizer is not installed in"));
  EXPECT_THAT(message_of([&] { Gpt2Tokenizer::from_dir(dir.path()); }),
              HasSubstr("holds no GPT-2 tokenizer files"));

  write_tiny_bpe(dir.path(), false);
  write_text(dir / "vocab.json", "{\"a\": 0,");
  EXPECT_THAT(message_of([&] { Gpt2Tokenizer::from_dir(dir.path()); }),
              HasSubstr("The GPT-2 vocabulary " + (dir / "vocab.json").string() + " is not"));

  write_tiny_bpe(dir.path(), false);
  write_text(dir / "merges.txt", "#version: 0.2\nh e\nh e x\n");
  EXPECT_THAT(message_of([&] { Gpt2Tokenizer::from_dir(dir.path()); }),
              HasSubstr("Line 3 of the GPT-2 merges file " + (dir / "merges.txt").string()));

  write_tiny_bpe(dir.path(), false);
  write_text(dir / "merges.txt", "#version: 0.2\nq z\n");
  EXPECT_THAT(message_of([&] { Gpt2Tokenizer::from_dir(dir.path()); }),
              HasSubstr("merges tokens that are not in vocab.json"));

  write_text(dir / "vocab.json", "{\"a\": 0, \"<|endoftext|>\": 1}");
  EXPECT_THAT(message_of([&] { Gpt2Tokenizer::from_dir(dir.path()); }),
              HasSubstr("lacks the symbol for byte 0"));

  std::filesystem::permissions(dir / "merges.txt", std::filesystem::perms::none);
  if (::geteuid() != 0) {  // root reads anything
    EXPECT_THAT(message_of([&] { Gpt2Tokenizer::from_dir(dir.path()); }),
                HasSubstr("merges.txt cannot be read"));
  }
}

// --- merging by rank, against a reference twin ---------------------------------------------------

// OpenAI's encoder.py bpe() written out on strings, as plainly as in the original: every round
// rescans the word for the lowest-ranked pair and merges all its occurrences left to right.
// Quadratic, so only for short words. Symbols are printable ASCII, which GPT-2's byte table maps
// to themselves.
// Ranks by merges-file line ("a b"; symbols never hold a space, GPT-2 writes it as U+0120).
using MergeRanks = std::unordered_map<std::string, int>;

std::vector<std::string> reference_bpe(const std::string& piece, const MergeRanks& ranks) {
  std::vector<std::string> word;
  for (char c : piece) word.emplace_back(1, c);
  while (word.size() > 1) {
    int best = std::numeric_limits<int>::max();
    std::pair<std::string, std::string> bigram;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks.find(word[i] + " " + word[i + 1]);
      if (it != ranks.end() && it->second < best) {
        best = it->second;
        bigram = {word[i], word[i + 1]};
      }
    }
    if (best == std::numeric_limits<int>::max()) break;
    std::vector<std::string> next;
    for (std::size_t i = 0; i < word.size(); ++i) {
      if (i + 1 < word.size() && word[i] == bigram.first && word[i + 1] == bigram.second) {
        next.push_back(word[i] + word[i + 1]);
        ++i;
      } else {
        next.push_back(word[i]);
      }
    }
    word = std::move(next);
  }
  return word;
}

// A vocabulary over the letters a-d with `count` merges of random pieces, listed in a shuffled
// order, so a merge's result can rank above or below the merges that build its parts (GPT-2's
// own files never do the latter, but the algorithm must not depend on it).
struct RandomBpe {
  MergeRanks ranks;
  std::map<std::string, int> ids;
};

RandomBpe write_random_bpe(const std::filesystem::path& dir, int count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  RandomBpe bpe;
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[byte_symbol(b)] = b;
    if (b >= 33 && b <= 126) bpe.ids[std::string(1, static_cast<char>(b))] = b;
  }
  std::vector<std::string> pieces = {"a", "b", "c", "d"};
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int>(merges.size()) < count) {
    const std::string& x = pieces[rng() % pieces.size()];
    const std::string& y = pieces[rng() % pieces.size()];
    if (x.size() + y.size() > 8 || bpe.ranks.count(x + " " + y)) continue;
    bpe.ranks[x + " " + y] = 0;
    merges.emplace_back(x, y);
    if (!bpe.ids.count(x + y)) {
      const int id = 256 + static_cast<int>(bpe.ids.size()) - 94;
      bpe.ids[x + y] = id;
      vocab[x + y] = id;
      pieces.push_back(x + y);
    }
  }
  std::shuffle(merges.begin(), merges.end(), rng);
  std::string text = "#version: 0.2\n";
  for (std::size_t r = 0; r < merges.size(); ++r) {
    bpe.ranks[merges[r].first + " " + merges[r].second] = static_cast<int>(r);
    text += merges[r].first + " " + merges[r].second + "\n";
  }
  vocab["<|endoftext|>"] = 256 + static_cast<int>(bpe.ids.size()) - 94;
  write_text(dir / "vocab.json", vocab.dump());
  write_text(dir / "merges.txt", text);
  return bpe;
}

std::string random_letters(std::size_t n, const std::string& alphabet, std::mt19937& rng) {
  std::string s(n, ' ');
  for (char& c : s) c = alphabet[rng() % alphabet.size()];
  return s;
}

TEST(Gpt2Bpe, MergesLikeTheReferenceOnRandomVocabularies) {
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    test::TempDir dir;
    const RandomBpe bpe = write_random_bpe(dir.path(), 300, seed);
    auto t = Gpt2Tokenizer::from_dir(dir.path());
    std::mt19937 rng(seed);
    for (std::size_t n : {1, 2, 3, 5, 8, 17, 64, 128, 129, 200, 700, 2000}) {
      for (int k = 0; k < (n < 700 ? 20 : 3); ++k) {
        const std::string word = random_letters(n, n < 64 && k % 2 ? "ab" : "abcd", rng);
        Ids expected;
        for (const auto& symbol : reference_bpe(word, bpe.ranks)) {
          expected.push_back(bpe.ids.at(symbol));
        }
        ASSERT_EQ(t->encode(word), expected) << word;
      }
    }
  }
}

TEST(Gpt2Bpe, MebibyteWordWithoutSpacesTokenizes) {
  // Encoding this took minutes when every round rescanned the whole word.
  test::TempDir dir;
  const RandomBpe bpe = write_random_bpe(dir.path(), 3000, 7);
  auto t = Gpt2Tokenizer::from_dir(dir.path());
  std::mt19937 rng(7);
  const std::string word = random_letters(std::size_t{1} << 20, "abcd", rng);
  const Ids ids = t->encode(word);
  EXPECT_EQ(t->decode(ids), word);
  EXPECT_LT(ids.size(), word.size() * 2 / 3);  // merged, not left as bytes
}

// --- GPT-2 with OpenAI's files
// ---------------------------------------------------------------------

TEST(Gpt2Real, KnownEncodings) {
  MMLAB_REQUIRE_GPT2(dir);
  auto t = Gpt2Tokenizer::from_dir(dir);
  EXPECT_EQ(t->vocab_size(), 50257);
  EXPECT_EQ(t->eot_id(), 50256);
  EXPECT_THAT(t->encode("Hello world"), ElementsAre(15496, 995));
  EXPECT_THAT(t->encode(" Hello world"), ElementsAre(18435, 995));
  EXPECT_THAT(t->encode("Hello, world!"), ElementsAre(15496, 11, 995, 0));
  // Reference ids from OpenAI's algorithm as packaged in gpt-3-encoder 1.1.4.
  EXPECT_THAT(t->encode("I'm don't they'll we've she's"),
              ElementsAre(40, 1101, 836, 470, 484, 1183, 356, 1053, 673, 338));
  EXPECT_THAT(t->encode("  leading and   inner   spaces  \n\n\ttabs\n"),
              ElementsAre(220, 3756, 290, 220, 220, 8434, 220, 220, 9029, 220, 220, 628, 197, 8658,
                          82, 198));
  EXPECT_THAT(
      t->encode("na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xC5\x92uvre \xE6\x9D\xB1\xE4\xBA\xAC "
                "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80 "
                "\xCE\xB1\xCE\xB2\xCE\xB3 \xF0\x9F\x98\x80"),
      ElementsAreArray({2616,  38776, 40304, 851,   25370, 240,   14795, 260,   10545, 251,
                        109,   12859, 105,   12466, 253,   21169, 18849, 38857, 16843, 20375,
                        12466, 120,   18849, 21169, 26367, 26638, 42063, 30325, 222}));
  EXPECT_THAT(t->encode("3.14159 and 1,000,000 numbers \xE2\x91\xA0\xE2\x91\xA1"),
              ElementsAre(18, 13, 1415, 19707, 290, 352, 11, 830, 11, 830, 3146, 2343, 239, 254,
                          158, 239, 94));
  EXPECT_THAT(t->encode("line1\r\nline2\n\n\nline3"),
              ElementsAre(1370, 16, 201, 198, 1370, 17, 628, 198, 1370, 18));
  EXPECT_THAT(t->encode("<|endoftext|>"), ElementsAre(27, 91, 437, 1659, 5239, 91, 29));
  EXPECT_THAT(t->encode("'S 'T 'RE ABC's"), ElementsAre(6, 50, 705, 51, 705, 2200, 9738, 338));
  EXPECT_THAT(t->encode("a\xC2\xA0"
                        "b\xE3\x80\x80"
                        "c"),
              ElementsAre(64, 1849, 65, 5099, 222, 66));
}

TEST(Gpt2Real, DecodeInvertsEncode) {
  MMLAB_REQUIRE_GPT2(dir);
  auto t = Gpt2Tokenizer::from_dir(dir);
  for (const std::string text : {"", " ", "Hello world", "  many   spaces\t\tand\n\n\nnewlines  ",
                                 "\xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x98\x80!",
                                 "It's 2024; prices rose 3.5%.", "\xFF\xFE invalid utf-8 \xC3"}) {
    EXPECT_EQ(t->decode(t->encode(text)), text) << text;
  }
  EXPECT_EQ(t->decode({15496, 50256, 995}), "Hello world");
  EXPECT_THAT(message_of([&] { t->decode({50257}); }), HasSubstr("token id 50257 is outside"));
}

TEST(Gpt2Real, LongWordsMergeLikeTheReference) {
  MMLAB_REQUIRE_GPT2(dir);
  auto t = Gpt2Tokenizer::from_dir(dir);
  // GPT-2's merges, read here independently of the implementation.
  MergeRanks ranks;
  std::istringstream merges(test::read_bytes(dir / "vocab.bpe"));
  int rank = 0;
  for (std::string line; std::getline(merges, line);) {
    if (line.empty() || line.rfind("#version:", 0) == 0) continue;  // "# #" is a merge
    ranks.emplace(line, rank++);
  }
  const nlohmann::json encoder = nlohmann::json::parse(test::read_bytes(dir / "encoder.json"));
  std::mt19937 rng(11);
  for (const std::string alphabet :
       {"abcdefghijklmnopqrstuvwxyz", "etaoinshr", "0123456789", "!#$%&()*+-./:;<=>?@[]^_{|}~"}) {
    const std::string word = random_letters(800, alphabet, rng);
    Ids expected;
    for (const auto& symbol : reference_bpe(word, ranks)) {
      expected.push_back(encoder.at(symbol).get<std::int32_t>());
    }
    EXPECT_EQ(t->encode(word), expected) << alphabet;
  }
  // Minutes when every round rescanned the word.
  std::string word = random_letters(std::size_t{1} << 18, "abcdefghijklmnopqrstuvwxyz", rng);
  EXPECT_EQ(t->decode(t->encode(word)), word);
}

// --- SentencePiece -------------------------------------------------------------------------------

// Varied enough for a few hundred merges: fixed sentences plus combinations of a word list.
std::string small_corpus() {
  std::string text;
  const char* lines[] = {
      "The quick brown fox jumps over the lazy dog.",
      "A journey of a thousand miles begins with a single step.",
      "To be, or not to be, that is the question.",
      "All that glitters is not gold; all who wander are not lost.",
      "It was the best of times, it was the worst of times.",
  };
  const char* words[] = {"river",   "mountain", "garden", "window",  "letter",  "morning",
                         "evening", "kingdom",  "silver", "harbour", "lantern", "meadow",
                         "thunder", "whisper",  "castle", "orchard", "valley",  "journey"};
  for (int i = 0; i < 40; ++i) {
    for (const char* l : lines) text += std::string(l) + "\n";
    for (int k = 0; k < 18; ++k) {
      text += std::string(words[k]) + " and " + words[(k * 7 + i) % 18] + " near the " +
              words[(k + i) % 18] + " " + std::to_string(i * 18 + k) + ".\n";
    }
    text += "\n";
  }
  return text;
}

TEST(SentencePieceTest, TrainsBpeAndRoundTrips) {
  test::TempDir dir;
  const std::string corpus = small_corpus();
  auto t = SentencePieceTokenizer::train(
      [&](const std::function<void(std::string_view)>& feed) { feed(corpus); }, 300,
      dir / "m.model");
  ASSERT_TRUE(std::filesystem::exists(dir / "m.model"));
  EXPECT_EQ(t->vocab_size(), 300);
  EXPECT_EQ(t->name(), "sentencepiece");
  for (const std::string text :
       {"The quick brown fox.", "  to be,  or not\n\nto be  ", "It was the worst of times.\n"}) {
    const Ids ids = t->encode(text);
    EXPECT_LT(ids.size(), text.size()) << "BPE should merge frequent pieces: " << text;
    EXPECT_EQ(t->decode(ids), text);
  }
  auto loaded = SentencePieceTokenizer::load(dir / "m.model");
  EXPECT_EQ(loaded->content_hash(), t->content_hash());
  EXPECT_EQ(loaded->encode("the lazy dog"), t->encode("the lazy dog"));
  const Ids with_eot = {t->encode("fox")[0], t->eot_id()};
  EXPECT_EQ(t->decode(with_eot), t->decode({with_eot[0]}));
}

TEST(SentencePieceTest, ByteFallbackKeepsUnseenCharacters) {
  test::TempDir dir;
  const std::string corpus = small_corpus();
  auto t = SentencePieceTokenizer::train(
      [&](const std::function<void(std::string_view)>& feed) { feed(corpus); }, 600,
      dir / "m.model");
  const std::string text = "Z\xC3\xBCrich \xE6\x9D\xB1\xE4\xBA\xAC fox";
  EXPECT_EQ(t->decode(t->encode(text)), text);
}

TEST(SentencePieceTest, BadModelAndImpossibleVocabAreUserErrors) {
  test::TempDir dir;
  write_text(dir / "bad.model", "not a protobuf at all");
  EXPECT_THAT(
      message_of([&] { SentencePieceTokenizer::load(dir / "bad.model"); }),
      HasSubstr("The SentencePiece model " + (dir / "bad.model").string() + " is not valid"));
  EXPECT_THAT(message_of([&] { SentencePieceTokenizer::load(dir / "missing.model"); }),
              HasSubstr("missing.model does not exist"));
  const std::string corpus = small_corpus();
  EXPECT_THAT(message_of([&] {
                SentencePieceTokenizer::train(
                    [&](const std::function<void(std::string_view)>& feed) { feed(corpus); }, 20,
                    dir / "tiny.model");
              }),
              HasSubstr("Cannot train a SentencePiece model with vocab_size 20"));
  EXPECT_FALSE(std::filesystem::exists(dir / "tiny.model"));
}

TEST(LoadTokenizer, UnknownKindListsValidOnes) {
  EXPECT_THAT(message_of([] {
                load_tokenizer({"wordpiece", {}});
              }),
              HasSubstr("Use one of: byte, gpt2, sentencepiece."));
  EXPECT_EQ(load_tokenizer({"byte", {}})->vocab_size(), 257);
}

}  // namespace
}  // namespace mmlab::data
