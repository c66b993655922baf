// SPDX-License-Identifier: GPL-3.0-or-later
// Charts in the colours of the widgets around them: a QCustomPlot paints its own background,
// axes, grid and legend (white and black by default), so under a dark palette it would stay a
// white block with dark curves. apply_plot_theme() derives all of them from a QPalette; the
// studio's View ▸ Theme picks the palette (the system's, or a fixed light or dark one).
#pragma once

#include <QColor>
#include <QPalette>
#include <QString>

class QCustomPlot;

namespace mmlab::ui {

/// The themes of View ▸ Theme, kept in the settings ("view/theme") by these names.
enum class Theme { kSystem, kLight, kDark };
Theme theme_from_name(const QString& name);
QString theme_name(Theme theme);

/// True when the palette's base (the background of views) is darker than its text.
bool is_dark(const QPalette& palette);
/// A dark palette for every widget (Fusion's roles, Qt's own dark colours).
QPalette dark_palette();
/// The light palette of the style in use.
QPalette light_palette();
/// Sets the application palette for `theme`; kSystem gives it back to the platform (the
/// desktop's light or dark mode).
void apply_theme(Theme theme);

/// WCAG's contrast ratio of two colours (1 … 21).
double contrast_ratio(const QColor& a, const QColor& b);
/// `color`, lightened in steps until a line in it stands out (contrast ≥ 3) on a dark
/// `background`; unchanged on a light one.
QColor readable_on(QColor color, const QColor& background);

/// Background, axes, tick labels, grid and legend of `plot` in the colours of `palette`.
void apply_plot_theme(QCustomPlot* plot, const QPalette& palette);

}  // namespace mmlab::ui
