// SPDX-License-Identifier: GPL-3.0-or-later
// mmlab-studio: the desktop application. Thin on purpose (STYLE.md 13): parse the options, set up
// the application object, open the main window. Everything else lives in mmlab_ui.
#include <QApplication>
#include <QCommandLineParser>
#include <QIcon>
#include <QSettings>
#include <QStyleFactory>
#include <QTimer>

#include "ui/e2e_driver.h"
#include "ui/main_window.h"

int main(int argc, char** argv) {
  // resources/mmlab.qrc is compiled into the static mmlab_ui library, whose registration object
  // the linker drops unless something refers to it.
  Q_INIT_RESOURCE(mmlab);
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("mmlab"));
  QApplication::setApplicationName(QStringLiteral("mmlab-studio"));
  QApplication::setApplicationDisplayName(QStringLiteral("MoE-Mamba Studio"));
  QApplication::setApplicationVersion(QStringLiteral("0.1.0"));
  QApplication::setDesktopFileName(QStringLiteral("mmlab-studio"));
  QApplication::setWindowIcon(QIcon(QStringLiteral(":/mmlab/icons/mmlab-studio.svg")));

  QCommandLineParser cli;
  cli.setApplicationDescription(
      QStringLiteral("Launch, watch and compare MoE-Mamba, Mamba and Transformer runs."));
  cli.addHelpOption();
  cli.addVersionOption();
  QCommandLineOption db({QStringLiteral("d"), QStringLiteral("db")},
                        QStringLiteral("Results database (default: the last one, or "
                                       "$XDG_DATA_HOME/mmlab/results.sqlite)."),
                        QStringLiteral("PATH"));
  QCommandLineOption open({QStringLiteral("o"), QStringLiteral("open")},
                          QStringLiteral("Open an experiment file in the new-experiment dialog."),
                          QStringLiteral("EXPERIMENT.json"));
  QCommandLineOption dark(QStringLiteral("dark"),
                          QStringLiteral("Use the dark theme (View ▸ Theme; remembered)."));
  QCommandLineOption light(QStringLiteral("light"),
                           QStringLiteral("Use the light theme (View ▸ Theme; remembered)."));
  QCommandLineOption e2e(QStringLiteral("e2e-report"),
                         QStringLiteral("Test hook: launch --open's experiment through the dialog, "
                                        "wait for its runs, write what the chart shows to FILE "
                                        "and quit."),
                         QStringLiteral("FILE"));
  QCommandLineOption shot(QStringLiteral("e2e-screenshot"),
                          QStringLiteral("With --e2e-report: also save a screenshot."),
                          QStringLiteral("PNG"));
  cli.addOptions({db, open, dark, light, e2e, shot});
  cli.process(app);

  QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
  // The theme is View ▸ Theme's (the main window applies it); these set it from the command line.
  QSettings settings;
  if (cli.isSet(dark)) settings.setValue(QStringLiteral("view/theme"), QStringLiteral("dark"));
  if (cli.isSet(light)) settings.setValue(QStringLiteral("view/theme"), QStringLiteral("light"));

  mmlab::ui::MainWindow window(cli.value(db));
  window.show();
  if (cli.isSet(e2e)) {
    auto* driver =
        new mmlab::ui::E2eDriver(&window, cli.value(open), cli.value(e2e), cli.value(shot));
    driver->start();
  } else if (cli.isSet(open)) {
    // After the event loop starts, so the dialog opens over a painted window.
    const QString file = cli.value(open);
    QTimer::singleShot(0, &window, [&window, file] { window.open_experiment_file(file); });
  }
  return app.exec();
}
