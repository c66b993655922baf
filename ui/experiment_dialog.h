// SPDX-License-Identifier: GPL-3.0-or-later
// "New experiment" (and "Clone & edit"): a typed form and a JSON pane showing one document, kept
// in sync both ways. The document is the JSON: the form patches the keys it knows and keeps any
// other key the user typed into the pane. Validation is mmlab_config's parse_experiment (the
// messages of `mmlab validate`, each with its JSON path); the read-outs (total/active parameters,
// tokens per step, total tokens, rough memory) come from count_params on the parsed runs.
#pragma once

#include <QDialog>
#include <QString>
#include <QStringList>
#include <nlohmann/json.hpp>
#include <optional>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QRadioButton;
class QSpinBox;
class QTableWidget;
class QTimer;

namespace mmlab::ui {

/// The paper's experiment that a scale of the dialog stands for ("paper 25M":
/// experiments/paper/25m.json, "paper 100M": 100m.json, compiled into the studio); null for the
/// tiny and custom scales.
nlohmann::json paper_experiment(const QString& scale);

/// The model keys a scale gives a run of `family` on top of the experiment's defaults: at a paper
/// scale those that the file's run of that family writes (a MoE family the file has no run of
/// takes the experts of its moe-mamba run); at the tiny scale 4 experts for a MoE family; nothing
/// at the custom scale.
nlohmann::json scale_run_model(const QString& family, const QString& scale);

/// CUDA devices visible to this machine ("cuda:0", …), from the driver's device nodes.
QStringList cuda_devices();

class ExperimentDialog : public QDialog {
  Q_OBJECT

 public:
  explicit ExperimentDialog(QWidget* parent = nullptr);

  /// Loads a document (an experiment file's content, or a cloned run). `baseline`: a run config
  /// the result is diffed against (Clone & edit).
  void set_document(const nlohmann::json& doc, const nlohmann::json& baseline = {});
  const nlohmann::json& document() const { return doc_; }
  QString json_text() const;
  /// Writes json_text() to `path` (whole or not at all); false with the sentence in `error`.
  bool save_to(const QString& path, QString* error);
  /// Replaces the JSON pane's text as if typed, and syncs the form at once.
  void set_json_text(const QString& text);
  /// The problems found (empty when valid).
  const QStringList& problems() const { return problems_; }
  bool is_valid() const { return problems_.isEmpty(); }
  /// Read-out text (parameters, tokens, memory) for the current document.
  QString readout_text() const;
  /// Where the runs train: `local` or a host's name (Settings ▸ Hosts). Not part of the
  /// document: where a run trains is not what it is.
  QString target() const;
  /// Processes per run ("GPUs per run"): more than 1 trains each run data-parallel on that many
  /// local GPUs (or CPU processes), through `mmlab launch --nproc N`. Not part of the document
  /// either.
  int ranks_per_run() const;
  /// Checks a remote target over ssh (reachable, mmlab there, same schema); false with its one
  /// sentence added to the problems, so nothing is queued. Launch calls it.
  bool check_target();

  /// A document for Clone & edit of one stored run config.
  static nlohmann::json clone_document(const nlohmann::json& run_config, const QString& run_name);
  /// The default document: experiments/quick-compare.json (the paper's four families, tiny, on
  /// the CPU), compiled into the studio.
  static nlohmann::json default_document();

 private:
  void form_changed();
  void json_edited();
  void sync_form_from_doc();
  void validate();
  void apply_scale();
  /// Sets model.`key` in every run of a MoE family (where the presets keep it), then the form.
  void set_moe_key(const std::string& key, const nlohmann::json& value);
  void reload_targets();

  nlohmann::json doc_;
  nlohmann::json baseline_;
  QStringList problems_;
  bool syncing_ = false;

  QLineEdit* name_ = nullptr;
  QListWidget* families_ = nullptr;
  QComboBox* scale_ = nullptr;
  QSpinBox* d_model_ = nullptr;
  QSpinBox* n_block_ = nullptr;
  // MoE and attention knobs: shown from the first MoE (attention) run, written to every one.
  QSpinBox* n_expert_ = nullptr;
  QSpinBox* d_expert_ = nullptr;
  QDoubleSpinBox* capacity_ = nullptr;
  QSpinBox* head_dim_ = nullptr;
  QRadioButton* by_steps_ = nullptr;
  QRadioButton* by_tokens_ = nullptr;
  QLineEdit* budget_ = nullptr;
  QSpinBox* batch_ = nullptr;
  QSpinBox* seq_len_ = nullptr;
  QLineEdit* lr_ = nullptr;
  QComboBox* data_source_ = nullptr;
  QComboBox* data_format_ = nullptr;
  QComboBox* tokenizer_ = nullptr;
  QLineEdit* seeds_ = nullptr;
  QComboBox* device_ = nullptr;
  QComboBox* target_ = nullptr;
  QSpinBox* ranks_ = nullptr;
  QPlainTextEdit* json_ = nullptr;
  QListWidget* problem_list_ = nullptr;
  QTableWidget* readout_ = nullptr;
  QLabel* diff_label_ = nullptr;
  QTimer* json_timer_ = nullptr;
};

}  // namespace mmlab::ui
