// swift-tools-version: 6.1
// Speed and memory benchmarks of MetaBench, kept in their own package so ordo-one/benchmark and its
// plugin stay out of the main build and of CI. Run from this folder: `swift package benchmark`.
import PackageDescription

let package = Package(
    name: "MetaBenchBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "MetaBench", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "MetaBenchBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MetaBench", package: "MetaBench"),
                "RandomEpisodes",
            ],
            path: "Benchmarks/MetaBenchBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Convolution candidates side by side (oneDNN, LIBXSMM, Winograd) against the engine: needs libdnnl-dev and
        // libxsmm-dev. Outside Benchmarks/, which the benchmark plugin would take for ordo-one benchmarks.
        .target(
            name: "DNNLConv",
            path: "ConvCandidates/DNNLConv",
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("openblas")]
        ),
        // LIBXSMM 1.17 (libxsmm-dev: static libraries in /usr/lib) direct convolutions in its own layout.
        .target(
            name: "XSMMConv",
            path: "ConvCandidates/XSMMConv",
            linkerSettings: [.linkedLibrary("xsmm"), .linkedLibrary("openblas"), .linkedLibrary("dl"), .linkedLibrary("m")]
        ),
        .executableTarget(
            name: "ConvCandidates",
            dependencies: ["DNNLConv", "XSMMConv", .product(name: "MetaBench", package: "MetaBench")],
            path: "ConvCandidates/Runner"
        ),
        // Training steps outside ordo-one, for heaptrack, perf and /usr/bin/time (Probe/main.swift).
        .executableTarget(name: "Probe", dependencies: [.product(name: "MetaBench", package: "MetaBench"), "RandomEpisodes"],
                          path: "Probe"),
        // Random-pixel episodes shared by the benchmarks and Probe.
        .target(name: "RandomEpisodes", dependencies: [.product(name: "MetaBench", package: "MetaBench")],
                path: "Support/RandomEpisodes"),
    ],
    swiftLanguageModes: [.v5]
)
