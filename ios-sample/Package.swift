// swift-tools-version:5.9
// Onsite iOS sample.
//   Onsite           the generated bindings (scripts/generate.sh) + Swift concurrency glue
//   OnsiteAppLogic   observable state over the bindings (no UI; tested with XCTest)
//   OnsiteSampleApp  the SwiftUI app (`#if canImport(SwiftUI)`)
// On Apple platforms the core comes from OnsiteFFI.xcframework (scripts/build-xcframework.sh);
// on Linux from the desktop build, linked from $ONSITE_LIB_DIR (how the tests run in CI).
import PackageDescription

#if os(Linux)
let libDir = Context.environment["ONSITE_LIB_DIR"] ?? "../target/debug"
let ffi: Target = .systemLibrary(name: "OnsiteFFI", path: "Sources/OnsiteFFI")
let link: [LinkerSetting] = [.unsafeFlags(["-L", libDir, "-lonsite_ffi", "-Xlinker", "-rpath", "-Xlinker", libDir])]
#else
let ffi: Target = .binaryTarget(name: "OnsiteFFI", path: "OnsiteFFI.xcframework")
let link: [LinkerSetting] = []
#endif

let package = Package(
    name: "OnsiteSample",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "Onsite", targets: ["Onsite"]),
        .library(name: "OnsiteAppLogic", targets: ["OnsiteAppLogic"]),
        .executable(name: "OnsiteSampleApp", targets: ["OnsiteSampleApp"]),
    ],
    targets: [
        ffi,
        .target(name: "Onsite", dependencies: ["OnsiteFFI"], path: "Sources/Onsite", linkerSettings: link),
        .target(name: "OnsiteAppLogic", dependencies: ["Onsite"], path: "Sources/OnsiteAppLogic"),
        .executableTarget(name: "OnsiteSampleApp", dependencies: ["OnsiteAppLogic"], path: "Sources/OnsiteSampleApp"),
        .testTarget(name: "OnsiteAppLogicTests", dependencies: ["OnsiteAppLogic"], path: "Tests/OnsiteAppLogicTests"),
    ]
)
