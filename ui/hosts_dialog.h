// SPDX-License-Identifier: GPL-3.0-or-later
// Settings ▸ Hosts: the execution targets of core/remote/host.h (the file `mmlab hosts` edits),
// listed with Add, Remove and Check. Check asks the host over ssh, as `mmlab hosts check` does,
// and shows its one sentence.
#pragma once

#include <QDialog>
#include <QString>
#include <filesystem>

#include "core/remote/host.h"

class QTableWidget;
class QLabel;

namespace mmlab::ui {

class HostsDialog : public QDialog {
  Q_OBJECT

 public:
  /// `path`: the hosts file (default: remote::default_hosts_path()).
  explicit HostsDialog(QWidget* parent = nullptr, std::filesystem::path path = {});

  /// Adds and saves a host; false with the sentence in `error` when it is refused.
  bool add_host(const remote::Host& host, QString* error);
  /// Removes and saves a host; false with the sentence in `error` when it is refused.
  bool remove_host(const QString& name, QString* error);
  /// "NAME: ok (…)" or the problem sentence; also shown under the table.
  QString check_host(const QString& name);
  const remote::HostList& hosts() const { return hosts_; }

 private:
  void reload();
  void add_from_form();

  std::filesystem::path path_;
  remote::HostList hosts_;
  QTableWidget* table_ = nullptr;
  QLabel* status_ = nullptr;
};

}  // namespace mmlab::ui
