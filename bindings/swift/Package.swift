// swift-tools-version:5.9
// XCTest suite for the generated Swift bindings (module `Onsite`) against the real Rust
// library. `scripts/test` assembles this package under build/swift with the generated
// sources (Sources/OnsiteFFI: header + module.modulemap; Sources/Onsite: Onsite.swift).
import PackageDescription

let libDir = Context.environment["ONSITE_LIB_DIR"] ?? "/src/target/debug"

let package = Package(
    name: "OnsiteBindings",
    products: [.library(name: "Onsite", targets: ["Onsite"])],
    targets: [
        .systemLibrary(name: "OnsiteFFI", path: "Sources/OnsiteFFI"),
        .target(
            name: "Onsite",
            dependencies: ["OnsiteFFI"],
            path: "Sources/Onsite",
            linkerSettings: [.unsafeFlags(["-L", libDir, "-lonsite_ffi", "-Xlinker", "-rpath", "-Xlinker", libDir])]
        ),
        .testTarget(name: "OnsiteTests", dependencies: ["Onsite"], path: "Tests/OnsiteTests"),
    ]
)
