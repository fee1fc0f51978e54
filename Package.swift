// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "MetaBench",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bench", targets: ["bench"]),
        .library(name: "MetaBench", targets: ["Engine", "Models", "FewShotData", "Learners", "Runner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // MARK: - Public API
        // The tensor and reverse-mode autodiff engine (higher-order gradients, OpenBLAS products).
        .target(name: "Engine", dependencies: ["COpenBLAS", "CDNNL", "CKernels"], exclude: ["README.md"]),
        // HDF5 files: a small Swift API over libhdf5.
        .target(name: "HDF5", dependencies: ["CHDF5"], exclude: ["README.md"]),
        // Few-shot datasets on HDF5 (torchmeta layouts, MetaBench's own), episodes, the embedded dataset.
        .target(name: "FewShotData", dependencies: ["HDF5", "CPNG"], exclude: ["README.md"]),
        // Layers, models, optimizers and checkpoints on top of the engine.
        .target(name: "Models", dependencies: ["Engine", "HDF5"], exclude: ["README.md"]),
        // The MetaLearner protocol, the registry and the learners.
        .target(name: "Learners", dependencies: ["Engine", "Models", "FewShotData"], exclude: ["README.md"]),
        // Suites, the runner, reports, stored results and regression checks.
        .target(name: "Runner", dependencies: [
            "Learners", "Models", "FewShotData", "Engine",
            .product(name: "Yams", package: "Yams"),
        ], exclude: ["README.md"]),
        // The `bench` command.
        .executableTarget(name: "bench", dependencies: [
            "Runner", "Learners", "FewShotData",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // MARK: - Implementation details
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // oneDNN's convolutions behind the engine's NCHW buffers (the engine's optional convolution backend).
        .target(name: "CDNNL", linkerSettings: [.linkedLibrary("dnnl")]),
        // The engine's C kernels: the Winograd backend's F(2×2, 3×3) convolutions on LIBXSMM's JIT kernels
        // (libxsmm-dev: static libraries) and OpenBLAS, direct convolutions of few input channels (first layers), and
        // the fused Conv4 block's passes over a plane (AVX2 copies chosen at run time).
        .target(name: "CKernels", dependencies: ["COpenBLAS"], linkerSettings: [
            .linkedLibrary("xsmm"), .linkedLibrary("openblas"), .linkedLibrary("dl"), .linkedLibrary("m"),
        ]),

        // MARK: - Tests
        .testTarget(name: "EngineTests", dependencies: ["Engine"]),
        .testTarget(name: "FewShotDataTests", dependencies: ["FewShotData", "HDF5"], exclude: ["Reference"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Engine", "HDF5"]),
        .testTarget(name: "LearnersTests", dependencies: ["Learners", "Models", "Engine", "FewShotData", "HDF5"],
                    exclude: ["Reference"]),
        .testTarget(name: "RunnerTests", dependencies: ["Runner", "Learners", "Models", "Engine", "FewShotData"]),
        // Runs the built `bench` and compares its output with Tests/BenchTests/Expected.
        .testTarget(name: "BenchTests", dependencies: ["bench", "Runner", "FewShotData"], exclude: ["Expected", "Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)
