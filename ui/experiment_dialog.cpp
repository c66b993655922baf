// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/experiment_dialog.h"

#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>
#include <cmath>
#include <set>

#include "core/config/config_fields.h"
#include "core/config/experiment.h"
#include "core/config/layer_pattern.h"
#include "core/config/param_count.h"
#include "core/data/corpus.h"
#include "core/remote/host.h"
#include "core/remote/ssh_runs.h"
#include "core/util/error.h"
#include "core/util/fs.h"
#include "ui/config_diff.h"
#include "ui/hosts_dialog.h"
#include "ui/run_table_model.h"

// resources/mmlab.qrc lives in this static library, whose registration object the linker drops
// unless something refers to it; Q_INIT_RESOURCE cannot be used inside a namespace.
static void register_resources() {
  static const bool once = [] {
    Q_INIT_RESOURCE(mmlab);
    return true;
  }();
  (void)once;
}

namespace mmlab::ui {

using nlohmann::json;

namespace {

const char kTiny[] = "tiny (CPU)";
const char kPaper25[] = "paper 25M";
const char kPaper100[] = "paper 100M";
const char kCustom[] = "custom";

bool is_moe_family(const std::string& family) {
  try {
    for (const LayerSpec& s : parse_pattern(family_pattern(family)))
      if (s.has_moe()) return true;
  } catch (const std::exception&) {
  }
  return false;
}

// json value at a/b (objects), or `fallback`.
template <class T>
T get_or(const json& j, const char* a, const char* b, T fallback) {
  if (!j.is_object() || !j.contains(a) || !j[a].is_object() || !j[a].contains(b)) return fallback;
  try {
    return j[a][b].get<T>();
  } catch (const std::exception&) {
    return fallback;
  }
}

// The form's widget for a config field: its object name is the field's JSON key, its tooltip
// the field's meaning, a spin box's minimum the rule's lower bound, a combo box's items the
// rule's words.
template <class Widget, class Config, class T>
void bind_to_field(Widget* w, T Config::*member) {
  const FieldInfo f = field_info(member);
  w->setObjectName(QString::fromStdString(f.key));
  w->setToolTip(QString::fromStdString(f.doc));
  if constexpr (std::is_base_of_v<QSpinBox, Widget>) {
    if (auto lo = f.rule.lower_bound()) w->setMinimum(int(*lo) + (f.rule.lower_open() ? 1 : 0));
  }
  if constexpr (std::is_base_of_v<QComboBox, Widget>) {
    for (const std::string& word : f.rule.words()) w->addItem(QString::fromStdString(word));
  }
}

// A field's value in a document's defaults, or its declared default.
template <class Config, class T>
T field_or_default(const json& defaults, T Config::*member) {
  return get_or<T>(defaults, section_key<Config>(), key_of(member).c_str(), default_of(member));
}

// The place of a field in a document's defaults (created).
template <class Config, class T>
json& field_in(json& defaults, T Config::*member) {
  json& section = defaults[section_key<Config>()];
  if (!section.is_object()) section = json::object();
  return section[key_of(member)];
}

}  // namespace

namespace {

// The scales that are a paper experiment, and its file (compiled in: resources/mmlab.qrc).
struct PaperScale {
  const char* label;
  const char* file;
};
const PaperScale kPaperScales[] = {{kPaper25, "25m.json"}, {kPaper100, "100m.json"}};

const json& section_of(const json& doc, const char* section) {
  static const json empty = json::object();
  if (!doc.is_object() || !doc.contains(section) || !doc[section].is_object()) return empty;
  return doc[section];
}

// The model section of the paper file's first run of `family`; null when it has none.
json paper_run_model_of(const json& paper, const std::string& family) {
  const std::string family_key = key_of(&ModelConfig::family);
  if (!paper.contains("runs") || !paper["runs"].is_array()) return nullptr;
  for (const json& r : paper["runs"]) {
    const json& m = section_of(r, section_key<ModelConfig>());
    if (m.value(family_key, std::string()) == family) return m;
  }
  return nullptr;
}

// Every model key that a run of some paper file writes: what a change of scale replaces.
std::set<std::string> scale_model_keys() {
  std::set<std::string> keys;
  for (const PaperScale& p : kPaperScales) {
    const json paper = paper_experiment(QString::fromLatin1(p.label));
    if (!paper.is_object() || !paper["runs"].is_array()) continue;
    for (const json& r : paper["runs"])
      for (auto it = section_of(r, section_key<ModelConfig>()).begin();
           it != section_of(r, section_key<ModelConfig>()).end(); ++it)
        keys.insert(it.key());
  }
  keys.erase(key_of(&ModelConfig::family));
  return keys;
}

}  // namespace

json paper_experiment(const QString& scale) {
  // Read once: the files are compiled in.
  static const std::vector<json> papers = [] {
    register_resources();
    std::vector<json> out;
    for (const PaperScale& p : kPaperScales) {
      QFile f(QStringLiteral(":/mmlab/experiments/paper/") + QLatin1String(p.file));
      json j = f.open(QIODevice::ReadOnly)
                   ? json::parse(f.readAll().toStdString(), nullptr, /*allow_exceptions=*/false)
                   : json();
      out.push_back(j.is_discarded() ? json() : j);
    }
    return out;
  }();
  for (size_t i = 0; i < papers.size(); ++i)
    if (scale == QLatin1String(kPaperScales[i].label)) return papers[i];
  return nullptr;
}

json scale_run_model(const QString& family, const QString& scale) {
  const std::string f = family.toStdString();
  json out = json::object();
  if (scale == QLatin1String(kTiny)) {
    if (is_moe_family(f)) out[key_of(&ModelConfig::n_expert)] = 4;
    return out;
  }
  const json paper = paper_experiment(scale);
  if (!paper.is_object()) return out;
  json model = paper_run_model_of(paper, f);
  // A MoE variant the paper's file leaves out (parallel, inner): the paper's MoE-Mamba experts.
  if (model.is_null() && is_moe_family(f)) model = paper_run_model_of(paper, "moe-mamba");
  if (!model.is_object()) return out;
  // A key the run writes as the defaults have it is no setting of the run's own: kept at run
  // level it would override the form's edits of the defaults.
  const json& defaults = section_of(section_of(paper, "defaults"), section_key<ModelConfig>());
  for (auto it = model.begin(); it != model.end(); ++it) {
    if (it.key() == key_of(&ModelConfig::family)) continue;
    if (defaults.contains(it.key()) && defaults[it.key()] == it.value()) continue;
    out[it.key()] = it.value();
  }
  return out;
}

QStringList cuda_devices() {
  QStringList out;
  const QStringList nodes =
      QDir(QStringLiteral("/dev")).entryList({QStringLiteral("nvidia[0-9]*")}, QDir::System);
  for (const QString& n : nodes) {
    bool ok = false;
    const int i = n.mid(6).toInt(&ok);
    if (ok) out << QStringLiteral("cuda:%1").arg(i);
  }
  out.sort();
  return out;
}

json ExperimentDialog::default_document() {
  // experiments/quick-compare.json, compiled in (resources/mmlab.qrc): the studio's quick
  // comparison is the file `mmlab train experiments/quick-compare.json` trains, never a second
  // experiment of its own under the same name.
  register_resources();
  QFile f(QStringLiteral(":/mmlab/experiments/quick-compare.json"));
  if (!f.open(QIODevice::ReadOnly)) return json::object();
  return json::parse(f.readAll().toStdString(), nullptr, /*allow_exceptions=*/false);
}

json ExperimentDialog::clone_document(const json& run_config, const QString& run_name) {
  // The cloned settings go into "defaults", which the form shows and edits; the run keeps only
  // what names it (its family, a custom layer pattern, its seed). Settings at run level would
  // override every form edit without a word.
  json defaults = json::object();
  for (const char* k :
       {section_key<ModelConfig>(), section_key<TrainConfig>(), section_key<DataConfig>()})
    if (run_config.contains(k) && run_config[k].is_object()) defaults[k] = run_config[k];
  json run_model = json::object();
  if (defaults.contains(section_key<ModelConfig>())) {
    json& m = defaults[section_key<ModelConfig>()];
    const std::string family = m.value(key_of(&ModelConfig::family), std::string());
    run_model[key_of(&ModelConfig::family)] = family;
    std::string standard;
    try {
      standard = family_pattern(family);
    } catch (const std::exception&) {
    }
    if (m.contains(key_of(&ModelConfig::pattern)) && m[key_of(&ModelConfig::pattern)].is_string() &&
        m[key_of(&ModelConfig::pattern)] != standard)
      run_model[key_of(&ModelConfig::pattern)] = m[key_of(&ModelConfig::pattern)];
    m.erase(key_of(&ModelConfig::family));
    m.erase(key_of(&ModelConfig::pattern));
    // The tokenizer's vocabulary, resolved by the trainer when the run started: left to it again,
    // so a tokenizer changed in the form brings its own.
    m.erase(key_of(&ModelConfig::vocab_size));
  }
  const std::string name = (run_name + QStringLiteral("-clone")).toStdString();
  json run = {{"name", name}, {section_key<ModelConfig>(), run_model}};
  if (run_config.contains(key_of(&RunConfig::seed)))
    run[key_of(&RunConfig::seed)] = run_config[key_of(&RunConfig::seed)];
  return {{"name", name},
          {"description", ("Cloned from run " + run_name).toStdString()},
          {"defaults", defaults},
          {"runs", json::array({run})}};
}

ExperimentDialog::ExperimentDialog(QWidget* parent) : QDialog(parent) {
  setWindowTitle(tr("New experiment"));
  resize(1100, 760);
  auto* form_box = new QWidget(this);
  auto* form = new QFormLayout(form_box);
  name_ = new QLineEdit(this);
  name_->setObjectName(QStringLiteral("name"));
  families_ = new QListWidget(this);
  families_->setObjectName(QStringLiteral("families"));
  for (const std::string& f : known_families()) {
    auto* item = new QListWidgetItem(QString::fromStdString(f), families_);
    item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
    item->setCheckState(Qt::Unchecked);
  }
  families_->setMaximumHeight(families_->sizeHintForRow(0) * (families_->count() + 1));
  scale_ = new QComboBox(this);
  scale_->setObjectName(QStringLiteral("scale"));
  scale_->addItems({tr(kTiny), tr(kPaper25), tr(kPaper100), tr(kCustom)});
  // Each field's widget takes its name, tooltip, lower limit and word list from the field's
  // declaration; only the upper limits are the form's own.
  d_model_ = new QSpinBox(this);
  bind_to_field(d_model_, &ModelConfig::d_model);
  d_model_->setMaximum(16384);
  n_block_ = new QSpinBox(this);
  bind_to_field(n_block_, &ModelConfig::n_block);
  n_block_->setMaximum(1024);
  const QString every_moe_run = tr(" Set in every MoE run.");
  n_expert_ = new QSpinBox(this);
  bind_to_field(n_expert_, &ModelConfig::n_expert);
  n_expert_->setMaximum(4096);
  n_expert_->setToolTip(n_expert_->toolTip() + every_moe_run);
  d_expert_ = new QSpinBox(this);
  bind_to_field(d_expert_, &ModelConfig::d_expert);
  d_expert_->setMaximum(1 << 20);
  d_expert_->setSpecialValueText(tr("4 × d_model"));
  d_expert_->setToolTip(d_expert_->toolTip() + every_moe_run);
  capacity_ = new QDoubleSpinBox(this);
  bind_to_field(capacity_, &ModelConfig::capacity_factor);
  capacity_->setRange(0.05, 64);  // > 0 by its rule; a spin box needs a first step
  capacity_->setSingleStep(0.25);
  capacity_->setDecimals(2);
  capacity_->setToolTip(capacity_->toolTip() + every_moe_run);
  head_dim_ = new QSpinBox(this);
  bind_to_field(head_dim_, &ModelConfig::head_dim);
  head_dim_->setMaximum(4096);
  head_dim_->setToolTip(head_dim_->toolTip() + tr(" One for every run."));
  by_steps_ = new QRadioButton(tr("steps"), this);
  by_tokens_ = new QRadioButton(tr("tokens"), this);
  by_steps_->setChecked(true);
  budget_ = new QLineEdit(this);
  budget_->setObjectName(QStringLiteral("budget"));
  auto* budget_row = new QHBoxLayout;
  budget_row->addWidget(budget_);
  budget_row->addWidget(by_steps_);
  budget_row->addWidget(by_tokens_);
  batch_ = new QSpinBox(this);
  bind_to_field(batch_, &TrainConfig::batch_size);
  batch_->setMaximum(1 << 20);
  seq_len_ = new QSpinBox(this);
  bind_to_field(seq_len_, &TrainConfig::seq_len);
  seq_len_->setMaximum(1 << 20);
  lr_ = new QLineEdit(this);
  bind_to_field(lr_, &TrainConfig::lr);
  lr_->setToolTip(lr_->toolTip() + tr(" The paper's value for every family is 1e-3."));
  data_source_ = new QComboBox(this);
  bind_to_field(data_source_, &DataConfig::source);
  data_source_->setObjectName(QStringLiteral("data_source"));
  data_source_->setEditable(true);
  data_source_->addItem(QString::fromStdString(default_of(&DataConfig::source)));
  auto* browse = new QPushButton(tr("Browse…"), this);
  auto* data_row = new QHBoxLayout;
  data_row->addWidget(data_source_, 1);
  data_row->addWidget(browse);
  data_format_ = new QComboBox(this);
  bind_to_field(data_format_, &DataConfig::format);
  tokenizer_ = new QComboBox(this);
  bind_to_field(tokenizer_, &DataConfig::tokenizer);
  seeds_ = new QLineEdit(this);
  seeds_->setObjectName(QStringLiteral("seeds"));
  seeds_->setPlaceholderText(tr("e.g. 1, 2, 3 (one run per seed)"));
  device_ = new QComboBox(this);
  bind_to_field(device_, &TrainConfig::device);
  device_->addItem(QStringLiteral("cpu"));
  device_->addItems(cuda_devices());
  if (device_->count() == 1) device_->addItem(QStringLiteral("cuda"));  // for a GPU server
  form->addRow(tr("Name"), name_);
  form->addRow(tr("Families"), families_);
  form->addRow(tr("Scale"), scale_);
  form->addRow(tr("d_model"), d_model_);
  form->addRow(tr("n_block"), n_block_);
  form->addRow(tr("n_expert"), n_expert_);
  form->addRow(tr("d_expert"), d_expert_);
  form->addRow(tr("capacity_factor"), capacity_);
  form->addRow(tr("head_dim"), head_dim_);
  form->addRow(tr("Budget"), budget_row);
  form->addRow(tr("batch_size"), batch_);
  form->addRow(tr("seq_len"), seq_len_);
  form->addRow(tr("lr"), lr_);
  form->addRow(tr("Data"), data_row);
  form->addRow(tr("Format"), data_format_);
  form->addRow(tr("Tokenizer"), tokenizer_);
  form->addRow(tr("Seeds"), seeds_);
  form->addRow(tr("Device"), device_);
  ranks_ = new QSpinBox(this);
  ranks_->setObjectName(QStringLiteral("ranks_per_run"));
  ranks_->setRange(1, 64);
  ranks_->setToolTip(
      tr("Processes per run: more than 1 trains each run data-parallel, one process per GPU (or "
         "CPU processes on the CPU); batch_size must divide by it"));
  form->addRow(tr("GPUs per run"), ranks_);
  connect(ranks_, qOverload<int>(&QSpinBox::valueChanged), this, [this] { validate(); });
  target_ = new QComboBox(this);
  target_->setObjectName(QStringLiteral("target"));
  target_->setToolTip(tr("Where the runs train: this machine, an SSH host or a Slurm cluster"));
  auto* hosts = new QPushButton(tr("Hosts…"), this);
  auto* target_row = new QHBoxLayout;
  target_row->addWidget(target_, 1);
  target_row->addWidget(hosts);
  form->addRow(tr("Run on"), target_row);
  reload_targets();
  connect(hosts, &QPushButton::clicked, this, [this] {
    HostsDialog(this).exec();
    reload_targets();
  });

  json_ = new QPlainTextEdit(this);
  json_->setObjectName(QStringLiteral("json"));
  json_->setFont(QFont(QStringLiteral("monospace")));
  json_->setLineWrapMode(QPlainTextEdit::NoWrap);
  auto* split = new QSplitter(Qt::Horizontal, this);
  split->addWidget(form_box);
  split->addWidget(json_);
  split->setStretchFactor(1, 1);

  problem_list_ = new QListWidget(this);
  problem_list_->setObjectName(QStringLiteral("problems"));
  problem_list_->setMaximumHeight(90);
  readout_ = new QTableWidget(0, 7, this);
  readout_->setObjectName(QStringLiteral("readout"));
  readout_->setHorizontalHeaderLabels({tr("Run"), tr("Family"), tr("Params"), tr("Active"),
                                       tr("Tokens/step"), tr("Total tokens"), tr("≈ Memory")});
  readout_->horizontalHeader()->setStretchLastSection(true);
  readout_->verticalHeader()->hide();
  readout_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  readout_->setMaximumHeight(150);
  readout_->horizontalHeaderItem(6)->setToolTip(
      tr("fp32 weights, gradients and Adam moments (16 B/parameter) plus activations "
         "(≈34·B·L·D bytes per layer at 2-byte precision): a rough guide, not a promise"));
  diff_label_ = new QLabel(this);
  diff_label_->setWordWrap(true);
  diff_label_->setVisible(false);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  buttons->button(QDialogButtonBox::Ok)->setText(tr("Launch"));
  buttons->button(QDialogButtonBox::Ok)->setObjectName(QStringLiteral("launch"));
  auto* save = buttons->addButton(tr("Save…"), QDialogButtonBox::ActionRole);

  auto* layout = new QVBoxLayout(this);
  layout->addWidget(split, 1);
  layout->addWidget(diff_label_);
  layout->addWidget(new QLabel(tr("Problems"), this));
  layout->addWidget(problem_list_);
  layout->addWidget(readout_);
  layout->addWidget(buttons);

  json_timer_ = new QTimer(this);
  json_timer_->setSingleShot(true);
  json_timer_->setInterval(300);  // re-parse once typing pauses
  connect(json_timer_, &QTimer::timeout, this, &ExperimentDialog::json_edited);
  connect(json_, &QPlainTextEdit::textChanged, this, [this] {
    if (!syncing_) json_timer_->start();
  });
  connect(buttons, &QDialogButtonBox::accepted, this, [this] {
    json_edited();
    if (is_valid() && check_target()) accept();
  });
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(save, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Save experiment"),
                                                      name_->text() + QStringLiteral(".json"),
                                                      tr("Experiment (*.json)"));
    if (path.isEmpty()) return;
    QString error;
    if (!save_to(path, &error)) QMessageBox::warning(this, tr("Save experiment"), error);
  });
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString p = QFileDialog::getExistingDirectory(this, tr("Text folder or shards"));
    if (!p.isEmpty()) data_source_->setCurrentText(p);
  });
  auto changed = [this] { form_changed(); };
  connect(name_, &QLineEdit::textEdited, this, changed);
  connect(families_, &QListWidget::itemChanged, this, changed);
  connect(scale_, &QComboBox::currentTextChanged, this, [this] {
    if (!syncing_) apply_scale();
  });
  for (QSpinBox* s : {d_model_, n_block_}) {
    connect(s, qOverload<int>(&QSpinBox::valueChanged), this, [this] {
      if (syncing_) return;
      syncing_ = true;
      scale_->setCurrentText(tr(kCustom));  // hand-edited sizes are no paper scale any more
      syncing_ = false;
      form_changed();
    });
  }
  for (QSpinBox* s : {batch_, seq_len_})
    connect(s, qOverload<int>(&QSpinBox::valueChanged), this, changed);
  connect(n_expert_, qOverload<int>(&QSpinBox::valueChanged), this,
          [this](int v) { set_moe_key(key_of(&ModelConfig::n_expert), v); });
  connect(d_expert_, qOverload<int>(&QSpinBox::valueChanged), this,
          [this](int v) { set_moe_key(key_of(&ModelConfig::d_expert), v); });
  connect(capacity_, qOverload<double>(&QDoubleSpinBox::valueChanged), this,
          [this](double v) { set_moe_key(key_of(&ModelConfig::capacity_factor), v); });
  connect(head_dim_, qOverload<int>(&QSpinBox::valueChanged), this, [this](int v) {
    if (syncing_) return;
    // One head size for the whole experiment: the defaults' value, not overridden by a run.
    if (!doc_["defaults"].is_object()) doc_["defaults"] = json::object();
    if (!doc_["defaults"][section_key<ModelConfig>()].is_object())
      doc_["defaults"][section_key<ModelConfig>()] = json::object();
    doc_["defaults"][section_key<ModelConfig>()][key_of(&ModelConfig::head_dim)] = v;
    if (doc_.contains("runs") && doc_["runs"].is_array())
      for (json& r : doc_["runs"])
        if (r.is_object() && r.contains(section_key<ModelConfig>()) &&
            r[section_key<ModelConfig>()].is_object())
          r[section_key<ModelConfig>()].erase(key_of(&ModelConfig::head_dim));
    form_changed();
  });
  for (QLineEdit* e : {budget_, lr_, seeds_}) connect(e, &QLineEdit::textEdited, this, changed);
  for (QRadioButton* r : {by_steps_, by_tokens_}) connect(r, &QRadioButton::toggled, this, changed);
  for (QComboBox* c : {data_source_, data_format_, tokenizer_, device_})
    connect(c, &QComboBox::currentTextChanged, this, changed);

  set_document(default_document());
}

void ExperimentDialog::set_document(const json& doc, const json& baseline) {
  doc_ = doc;
  baseline_ = baseline;
  setWindowTitle(baseline.is_null() ? tr("New experiment") : tr("Clone & edit"));
  syncing_ = true;
  json_->setPlainText(QString::fromStdString(doc_.dump(2)));
  syncing_ = false;
  sync_form_from_doc();
  validate();
}

QString ExperimentDialog::json_text() const {
  return json_->toPlainText();
}

bool ExperimentDialog::save_to(const QString& path, QString* error) {
  try {
    write_file_atomically(path.toStdString(), json_text().toStdString());
  } catch (const UserError& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
  return true;
}

void ExperimentDialog::set_json_text(const QString& text) {
  json_->setPlainText(text);
  json_timer_->stop();
  json_edited();
}

void ExperimentDialog::apply_scale() {
  const QString s = scale_->currentText();
  json& d = doc_["defaults"];
  if (!d.is_object()) d = json::object();
  const char* model = section_key<ModelConfig>();
  const char* train = section_key<TrainConfig>();
  const char* data = section_key<DataConfig>();
  for (const char* k : {model, train, data})
    if (!d[k].is_object()) d[k] = json::object();
  if (s == tr(kTiny)) {
    d[model][key_of(&ModelConfig::d_model)] = 64;
    d[model][key_of(&ModelConfig::n_block)] = 2;
    d[train][key_of(&TrainConfig::steps)] = 200;
    d[train].erase(key_of(&TrainConfig::tokens));
    d[train][key_of(&TrainConfig::batch_size)] = 8;
    d[train][key_of(&TrainConfig::seq_len)] = 64;
    d[train][key_of(&TrainConfig::lr)] = 1e-3;
    d[train][key_of(&TrainConfig::device)] = "cpu";
    d[data][key_of(&DataConfig::tokenizer)] = "byte";
  } else if (const json paper = paper_experiment(s); paper.is_object()) {
    // The paper's model and training setup, whole (so nothing of the document before it stays
    // behind, a head size or a smoothing); where the text comes from and which device trains stay
    // the user's: the file's "cuda" becomes this machine's first GPU.
    const json& pd = section_of(paper, "defaults");
    d[model] = section_of(pd, model);
    d[train] = section_of(pd, train);
    d[train][key_of(&TrainConfig::device)] =
        device_->count() > 1 ? device_->itemText(1).toStdString() : "cuda";
    const std::string source_key = key_of(&DataConfig::source);
    const json source = d[data].contains(source_key) ? d[data][source_key] : json();
    d[data].update(section_of(pd, data));
    if (!source.is_null()) d[data][source_key] = source;
  } else {
    return;  // custom: keep what is there
  }
  // Each run's own model keys from the new scale.
  const std::set<std::string> replaced = scale_model_keys();
  if (doc_.contains("runs") && doc_["runs"].is_array()) {
    for (json& r : doc_["runs"]) {
      if (!r.is_object() || !r.contains(model) || !r[model].is_object()) continue;
      json& m = r[model];
      for (const std::string& k : replaced) m.erase(k);
      m.update(scale_run_model(
          QString::fromStdString(m.value(key_of(&ModelConfig::family), std::string())), s));
    }
  }
  syncing_ = true;
  json_->setPlainText(QString::fromStdString(doc_.dump(2)));
  syncing_ = false;
  sync_form_from_doc();
  validate();
}

void ExperimentDialog::set_moe_key(const std::string& key, const json& value) {
  if (syncing_) return;
  if (doc_.contains("runs") && doc_["runs"].is_array())
    for (json& r : doc_["runs"]) {
      if (!r.is_object() || !r.contains(section_key<ModelConfig>()) ||
          !r[section_key<ModelConfig>()].is_object())
        continue;
      if (is_moe_family(
              r[section_key<ModelConfig>()].value(key_of(&ModelConfig::family), std::string())))
        r[section_key<ModelConfig>()][key] = value;
    }
  // A MoE run the families list adds later takes it from the defaults.
  if (!doc_["defaults"].is_object()) doc_["defaults"] = json::object();
  if (!doc_["defaults"][section_key<ModelConfig>()].is_object())
    doc_["defaults"][section_key<ModelConfig>()] = json::object();
  doc_["defaults"][section_key<ModelConfig>()][key] = value;
  form_changed();
}

void ExperimentDialog::form_changed() {
  if (syncing_) return;
  doc_["name"] = name_->text().toStdString();
  json& d = doc_["defaults"];
  if (!d.is_object()) d = json::object();
  field_in(d, &ModelConfig::d_model) = d_model_->value();
  field_in(d, &ModelConfig::n_block) = n_block_->value();
  bool ok = false;
  const qlonglong budget = budget_->text().trimmed().toLongLong(&ok);
  const json budget_value = ok ? json(budget) : json(budget_->text().toStdString());
  if (by_tokens_->isChecked()) {
    field_in(d, &TrainConfig::tokens) = budget_value;
    field_in(d, &TrainConfig::steps) = 0;
  } else {
    field_in(d, &TrainConfig::steps) = budget_value;
    d[section_key<TrainConfig>()].erase(key_of(&TrainConfig::tokens));
  }
  field_in(d, &TrainConfig::batch_size) = batch_->value();
  field_in(d, &TrainConfig::seq_len) = seq_len_->value();
  const double lr = lr_->text().trimmed().toDouble(&ok);
  field_in(d, &TrainConfig::lr) = ok ? json(lr) : json(lr_->text().toStdString());
  field_in(d, &TrainConfig::device) = device_->currentText().toStdString();
  field_in(d, &DataConfig::source) = data_source_->currentText().toStdString();
  field_in(d, &DataConfig::format) = data_format_->currentText().toStdString();
  field_in(d, &DataConfig::tokenizer) = tokenizer_->currentText().toStdString();

  // Seeds: "1, 2" → one run per seed via "seeds"; one seed → key_of(&RunConfig::seed).
  std::vector<int64_t> seeds;
  bool seeds_ok = true;
  for (const QString& s :
       seeds_->text().split(QRegularExpression(QStringLiteral("[,\\s]+")), Qt::SkipEmptyParts)) {
    const qlonglong v = s.toLongLong(&ok);
    seeds_ok &= ok;
    if (ok) seeds.push_back(v);
  }
  json old_runs = doc_.contains("runs") && doc_["runs"].is_array() ? doc_["runs"] : json::array();
  json runs = json::array();
  for (int i = 0; i < families_->count(); ++i) {
    if (families_->item(i)->checkState() != Qt::Checked) continue;
    const std::string fam = families_->item(i)->text().toStdString();
    json run;
    for (const json& r : old_runs)  // keep the user's edits to an existing run of this family
      if (r.is_object() && r.contains(section_key<ModelConfig>()) &&
          r[section_key<ModelConfig>()].is_object() &&
          r[section_key<ModelConfig>()].value(key_of(&ModelConfig::family), std::string()) == fam) {
        run = r;
        break;
      }
    if (run.is_null()) {
      json model = {{key_of(&ModelConfig::family), fam}};
      model.update(scale_run_model(QString::fromStdString(fam), scale_->currentText()));
      run = {{"name", fam}, {section_key<ModelConfig>(), model}};
    }
    run.erase(key_of(&RunConfig::seed));
    run.erase("seeds");
    if (!seeds_ok) {
      run["seeds"] = seeds_->text().toStdString();  // reported by validation with its path
    } else if (seeds.size() == 1) {
      run[key_of(&RunConfig::seed)] = seeds[0];
    } else if (seeds.size() > 1) {
      run["seeds"] = seeds;
    }
    runs.push_back(run);
  }
  doc_["runs"] = runs;
  syncing_ = true;
  json_->setPlainText(QString::fromStdString(doc_.dump(2)));
  syncing_ = false;
  validate();
}

void ExperimentDialog::json_edited() {
  const std::string text = json_->toPlainText().toStdString();
  try {
    doc_ = parse_json_text(text, "the JSON pane");
  } catch (const UserError& e) {
    problems_ = {QString::fromStdString(e.message())};
    problem_list_->clear();
    problem_list_->addItems(problems_);
    readout_->setRowCount(0);
    return;
  }
  sync_form_from_doc();
  validate();
}

void ExperimentDialog::sync_form_from_doc() {
  syncing_ = true;
  const json empty = json::object();
  const json& d = doc_.is_object() && doc_.contains("defaults") ? doc_["defaults"] : empty;
  name_->setText(QString::fromStdString(doc_.is_object() ? doc_.value("name", std::string()) : ""));
  d_model_->setValue(field_or_default(d, &ModelConfig::d_model));
  n_block_->setValue(field_or_default(d, &ModelConfig::n_block));
  // The MoE knobs as the first MoE run has them (its own keys over the defaults').
  const char* model = section_key<ModelConfig>();
  json moe_model = section_of(d, model);
  if (doc_.is_object() && doc_.contains("runs") && doc_["runs"].is_array())
    for (const json& r : doc_["runs"])
      if (is_moe_family(section_of(r, model).value(key_of(&ModelConfig::family), std::string()))) {
        moe_model.update(section_of(r, model));
        break;
      }
  const json moe = {{model, moe_model}};
  n_expert_->setValue(field_or_default(moe, &ModelConfig::n_expert));
  d_expert_->setValue(field_or_default(moe, &ModelConfig::d_expert));
  capacity_->setValue(field_or_default(moe, &ModelConfig::capacity_factor));
  head_dim_->setValue(field_or_default(d, &ModelConfig::head_dim));
  const int64_t tokens = field_or_default(d, &TrainConfig::tokens);
  by_tokens_->setChecked(tokens > 0);
  by_steps_->setChecked(tokens <= 0);
  budget_->setText(QString::number(tokens > 0 ? tokens : field_or_default(d, &TrainConfig::steps)));
  batch_->setValue(field_or_default(d, &TrainConfig::batch_size));
  seq_len_->setValue(field_or_default(d, &TrainConfig::seq_len));
  lr_->setText(QString::number(field_or_default(d, &TrainConfig::lr), 'g', 6));
  data_source_->setCurrentText(QString::fromStdString(field_or_default(d, &DataConfig::source)));
  data_format_->setCurrentText(QString::fromStdString(field_or_default(d, &DataConfig::format)));
  tokenizer_->setCurrentText(QString::fromStdString(field_or_default(d, &DataConfig::tokenizer)));
  const QString dev = QString::fromStdString(field_or_default(d, &TrainConfig::device));
  if (device_->findText(dev) < 0) device_->addItem(dev);
  device_->setCurrentText(dev);
  const int dm = d_model_->value(), nb = n_block_->value();
  QString scale = dm == 64 && nb == 2 ? tr(kTiny) : tr(kCustom);
  for (const PaperScale& p : kPaperScales) {
    const json paper = paper_experiment(QLatin1String(p.label));
    const json& m = section_of(section_of(paper, "defaults"), section_key<ModelConfig>());
    if (m.value(key_of(&ModelConfig::d_model), 0) == dm &&
        m.value(key_of(&ModelConfig::n_block), 0) == nb)
      scale = tr(p.label);
  }
  scale_->setCurrentText(scale);
  QStringList checked;
  QString seeds;
  if (doc_.is_object() && doc_.contains("runs") && doc_["runs"].is_array()) {
    for (const json& r : doc_["runs"]) {
      if (!r.is_object()) continue;
      if (r.contains(section_key<ModelConfig>()) && r[section_key<ModelConfig>()].is_object())
        checked << QString::fromStdString(
            r[section_key<ModelConfig>()].value(key_of(&ModelConfig::family), std::string()));
      if (seeds.isEmpty() && r.contains(key_of(&RunConfig::seed)))
        seeds = QString::fromStdString(r[key_of(&RunConfig::seed)].dump());
      if (seeds.isEmpty() && r.contains("seeds") && r["seeds"].is_array()) {
        QStringList s;
        for (const json& v : r["seeds"]) s << QString::fromStdString(v.dump());
        seeds = s.join(QStringLiteral(", "));
      }
    }
  }
  for (int i = 0; i < families_->count(); ++i)
    families_->item(i)->setCheckState(checked.contains(families_->item(i)->text()) ? Qt::Checked
                                                                                   : Qt::Unchecked);
  seeds_->setText(seeds);
  syncing_ = false;
}

void ExperimentDialog::validate() {
  problems_.clear();
  readout_->setRowCount(0);
  Experiment ex;
  try {
    ex = parse_experiment(doc_, "the experiment");
  } catch (const ConfigError& e) {
    for (const auto& p : e.problems()) problems_ << QString::fromStdString(p);
  } catch (const std::exception& e) {
    problems_ << QString::fromStdString(e.what());
  }
  // A data source that is not there is refused by the launch; say it here, before Launch.
  std::set<std::string> sources;
  for (size_t i = 0; problems_.isEmpty() && i < ex.runs.size(); ++i) {
    if (!sources.insert(ex.runs[i].data.source).second) continue;
    try {
      data::check_data_source(ex.runs[i].data.source);
    } catch (const UserError& e) {
      problems_ << QStringLiteral("$.runs[%1].data.source: %2")
                       .arg(i)
                       .arg(QString::fromStdString(e.what()));
    }
  }
  // Several processes per run split every batch: it must divide (the trainer refuses it too).
  const int ranks = ranks_ ? ranks_->value() : 1;
  for (size_t i = 0; problems_.isEmpty() && ranks > 1 && i < ex.runs.size(); ++i) {
    if (ex.runs[i].train.batch_size % ranks != 0) {
      problems_ << tr("$.runs[%1].train.batch_size: %2 does not divide by the %3 GPUs per run.")
                       .arg(i)
                       .arg(ex.runs[i].train.batch_size)
                       .arg(ranks);
    }
  }
  problem_list_->clear();
  problem_list_->addItems(problems_);
  if (problems_.isEmpty())
    problem_list_->addItem(tr("No problems: %1 run(s) ready to launch.").arg(ex.runs.size()));
  if (auto* ok = findChild<QPushButton*>(QStringLiteral("launch")))
    ok->setEnabled(problems_.isEmpty());
  if (!problems_.isEmpty()) return;

  readout_->setRowCount(int(ex.runs.size()));
  for (size_t i = 0; i < ex.runs.size(); ++i) {
    const RunConfig& rc = ex.runs[i];
    QStringList cells;
    cells << QString::fromStdString(rc.name) << QString::fromStdString(rc.model.family);
    try {
      const ParamCounts pc = count_params(rc.model, expected_vocab_size(rc));
      const double tps = double(rc.train.tokens_per_step());
      const double steps = double(rc.train.resolved_steps());
      int layers = 0;
      try {
        layers = int(expand_layers(rc.model).size());
      } catch (const std::exception&) {
      }
      const double act_bytes = 34.0 * rc.train.batch_size * rc.train.seq_len * rc.model.d_model *
                               layers * (rc.train.device == "cpu" ? 2.0 : 1.0);
      const double mem_gb = (16.0 * double(pc.total) + act_bytes) / 1e9;
      cells << RunTableModel::human_count(double(pc.total))
            << RunTableModel::human_count(double(pc.active)) << RunTableModel::human_count(tps)
            << RunTableModel::human_count(tps * steps)
            << QStringLiteral("%1 GB").arg(mem_gb, 0, 'f', mem_gb < 1 ? 2 : 1);
    } catch (const std::exception& e) {
      cells << QString::fromStdString(e.what());
    }
    for (int c = 0; c < cells.size(); ++c)
      readout_->setItem(int(i), c, new QTableWidgetItem(cells[c]));
  }
  readout_->resizeColumnsToContents();

  if (!baseline_.is_null() && !ex.runs.empty()) {
    json now = to_json(ex.runs.front());
    now.erase("name");
    json base = baseline_;
    base.erase("name");
    // vocab_size 0 takes the tokenizer's, which is what the original run resolved it to.
    if (ex.runs.front().model.vocab_size == 0 && base.contains(section_key<ModelConfig>()) &&
        base[section_key<ModelConfig>()].is_object())
      base[section_key<ModelConfig>()][key_of(&ModelConfig::vocab_size)] = 0;
    QStringList changes;
    for (const DiffRow& r : diff_configs({base, now}, true))
      changes << QStringLiteral("%1: %2 → %3")
                     .arg(QString::fromStdString(r.key), QString::fromStdString(r.values[0]),
                          QString::fromStdString(r.values[1]));
    diff_label_->setText(changes.isEmpty() ? tr("Same config as the original run.")
                                           : tr("Changes vs. the original: ") +
                                                 changes.join(QStringLiteral("; ")));
    diff_label_->setVisible(true);
  } else {
    diff_label_->setVisible(false);
  }
}

QString ExperimentDialog::readout_text() const {
  QStringList rows;
  for (int r = 0; r < readout_->rowCount(); ++r) {
    QStringList cells;
    for (int c = 0; c < readout_->columnCount(); ++c)
      cells << (readout_->item(r, c) ? readout_->item(r, c)->text() : QString());
    rows << cells.join(QLatin1Char('|'));
  }
  return rows.join(QLatin1Char('\n'));
}

void ExperimentDialog::reload_targets() {
  const QString current = target_->currentText();
  target_->clear();
  try {
    const auto hosts = remote::HostList::load(remote::default_hosts_path());
    for (const auto& h : hosts.hosts()) target_->addItem(QString::fromStdString(h.name));
  } catch (const UserError& e) {
    target_->addItem(QStringLiteral("local"));
    target_->setToolTip(QString::fromStdString(e.what()));
  }
  if (target_->findText(current) >= 0) target_->setCurrentText(current);
}

QString ExperimentDialog::target() const {
  return target_->currentText();
}

int ExperimentDialog::ranks_per_run() const {
  return ranks_->value();
}

bool ExperimentDialog::check_target() {
  if (target() == QLatin1String("local")) return true;
  QString problem;
  try {
    const auto hosts = remote::HostList::load(remote::default_hosts_path());
    QApplication::setOverrideCursor(Qt::WaitCursor);
    const remote::HostCheck c = remote::check_host(hosts.get(target().toStdString()));
    QApplication::restoreOverrideCursor();
    if (c.ok) return true;
    problem = QString::fromStdString(c.problem);
  } catch (const UserError& e) {
    QApplication::restoreOverrideCursor();
    problem = QString::fromStdString(e.what());
  }
  // The document is valid (its "no problems" line goes): the host is what stands in the way.
  problem_list_->clear();
  problem_list_->addItem(problem);
  return false;
}

}  // namespace mmlab::ui
