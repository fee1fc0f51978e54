import Foundation

/// Learning curves as a hand-written SVG: one panel per setting, validation accuracy (percent) against
/// meta-iteration, one line per learner (mean over seeds) over a faint line per seed when it has several.
/// Without validation, panels show training loss.
public enum LearningCurvePlot {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                          "#7f7f7f", "#bcbd22", "#17becf"]

    public static func svg(_ results: ResultSet) -> String {
        let settings = results.cells.map(\.config.setting.id).uniqued()
        let labels = results.cells.map(\.config.label).uniqued()
        let panelWidth = 420.0, panelHeight = 300.0
        let margin = (left: 60.0, right: 20.0, top: 40.0, bottom: 50.0)
        let legendWidth = 170.0
        let columns = min(max(settings.count, 1), 2)
        let rows = (max(settings.count, 1) + columns - 1) / columns
        let width = Double(columns) * panelWidth + legendWidth
        let height = Double(rows) * panelHeight
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>

        """
        let hasValidation = results.cells.contains { $0.learningCurve.contains { $0.validationAccuracy != nil } }

        for (panel, setting) in settings.enumerated() {
            let x0 = Double(panel % columns) * panelWidth, y0 = Double(panel / columns) * panelHeight
            let plotX = x0 + margin.left, plotY = y0 + margin.top
            let plotW = panelWidth - margin.left - margin.right, plotH = panelHeight - margin.top - margin.bottom

            var series: [(label: String, points: [(Double, Double)])] = []
            var seedSeries: [(label: String, points: [(Double, Double)])] = []
            for label in labels {
                let cells = results.cells.filter { $0.config.label == label && $0.config.setting.id == setting }
                var byIteration: [Int: [Double]] = [:]
                var seedLines: [[(Double, Double)]] = []
                for cell in cells {
                    var line: [(Double, Double)] = []
                    for point in cell.learningCurve {
                        let value = hasValidation ? point.validationAccuracy : point.loss
                        if let value, value.isFinite {
                            byIteration[point.iteration, default: []].append(value)
                            line.append((Double(point.iteration), value))
                        }
                    }
                    if !line.isEmpty { seedLines.append(line) }
                }
                let points = byIteration.keys.sorted().map { (Double($0), Statistics.mean(byIteration[$0] ?? [])) }
                series.append((label, points))
                if seedLines.count > 1 { seedSeries += seedLines.map { (label, $0) } }
            }
            let allPoints = series.flatMap(\.points) + seedSeries.flatMap(\.points)
            let maxX = max(allPoints.map(\.0).max() ?? 1, 1)
            var minY = hasValidation ? 0.0 : (allPoints.map(\.1).min() ?? 0)
            var maxY = hasValidation ? 100.0 : (allPoints.map(\.1).max() ?? 1)
            if maxY <= minY { minY -= 0.5; maxY += 0.5 }
            func px(_ x: Double) -> Double { plotX + x / maxX * plotW }
            func py(_ y: Double) -> Double { plotY + plotH - (y - minY) / (maxY - minY) * plotH }

            svg += "<text x=\"\(f(x0 + panelWidth / 2))\" y=\"\(f(y0 + 22))\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(escape(setting))</text>\n"
            // Axes, ticks and grid.
            svg += "<rect x=\"\(f(plotX))\" y=\"\(f(plotY))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
            for i in 0...4 {
                let y = minY + (maxY - minY) * Double(i) / 4
                svg += "<line x1=\"\(f(plotX))\" y1=\"\(f(py(y)))\" x2=\"\(f(plotX + plotW))\" y2=\"\(f(py(y)))\" stroke=\"#ddd\"/>\n"
                svg += "<text x=\"\(f(plotX - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(tick(y))</text>\n"
                let x = maxX * Double(i) / 4
                svg += "<text x=\"\(f(px(x)))\" y=\"\(f(plotY + plotH + 16))\" text-anchor=\"middle\">\(tick(x))</text>\n"
            }
            svg += "<text x=\"\(f(plotX + plotW / 2))\" y=\"\(f(plotY + plotH + 36))\" text-anchor=\"middle\">meta-iteration</text>\n"
            let yTitle = hasValidation ? "validation accuracy (%)" : "training loss"
            svg += "<text x=\"\(f(x0 + 16))\" y=\"\(f(plotY + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(x0 + 16)) \(f(plotY + plotH / 2)))\">\(yTitle)</text>\n"
            if allPoints.isEmpty {
                svg += "<text x=\"\(f(plotX + plotW / 2))\" y=\"\(f(plotY + plotH / 2))\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n"
            }
            for s in seedSeries {
                let colour = palette[(labels.firstIndex(of: s.label) ?? 0) % palette.count]
                let coordinates = s.points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
                svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1\" stroke-opacity=\"0.3\" points=\"\(coordinates)\"/>\n"
            }
            for (index, s) in series.enumerated() where !s.points.isEmpty {
                let colour = palette[labels.firstIndex(of: s.label).map { $0 % palette.count } ?? index % palette.count]
                let coordinates = s.points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
                svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(coordinates)\"/>\n"
                for point in s.points where s.points.count <= 30 {
                    svg += "<circle cx=\"\(f(px(point.0)))\" cy=\"\(f(py(point.1)))\" r=\"2.5\" fill=\"\(colour)\"/>\n"
                }
            }
        }
        // Legend.
        let legendX = Double(columns) * panelWidth + 10
        svg += "<text x=\"\(f(legendX))\" y=\"30\" font-weight=\"bold\">Learners</text>\n"
        for (index, label) in labels.enumerated() {
            let y = 50 + Double(index) * 20
            let colour = palette[index % palette.count]
            svg += "<line x1=\"\(f(legendX))\" y1=\"\(f(y - 4))\" x2=\"\(f(legendX + 24))\" y2=\"\(f(y - 4))\" stroke=\"\(colour)\" stroke-width=\"3\"/>\n"
            svg += "<text x=\"\(f(legendX + 30))\" y=\"\(f(y))\">\(escape(label))</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func tick(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(format: "%.2g", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
