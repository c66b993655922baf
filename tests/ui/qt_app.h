// SPDX-License-Identifier: GPL-3.0-or-later
// One QApplication for the whole ui test binary (Qt allows one per process), created on first use
// on the offscreen platform unless the caller chose another.
#pragma once

#include <QApplication>
#include <QStandardPaths>

namespace mmlab::test {

inline QApplication& qt_app() {
  static int argc = 1;
  static char name[] = "mmlab_ui_tests";
  static char* argv[] = {name, nullptr};
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  static QApplication* app = [] {
    auto* a = new QApplication(argc, argv);  // never destroyed: outlives all tests
    // Keep QSettings and XDG paths of the tests away from the user's own.
    QApplication::setOrganizationName(QStringLiteral("mmlab-tests"));
    QApplication::setApplicationName(QStringLiteral("mmlab_ui_tests"));
    QStandardPaths::setTestModeEnabled(true);
    return a;
  }();
  return *app;
}

}  // namespace mmlab::test
