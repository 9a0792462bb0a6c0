// UI-independent logic: state holders over the bindings. Plain Kotlin, so its tests run on
// the JVM against the desktop build of the core (scripts/test does the same with kotlinc).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin { jvmToolchain(17) }

dependencies {
    api(project(":bindings"))
    testImplementation(libs.junit)
    testRuntimeOnly(libs.jna)
}

tasks.test {
    // The desktop core from `cargo build -p onsite-ffi`, and a running onsite-server:
    //   ONSITE_SERVER=http://127.0.0.1:8080 ONSITE_DISPATCHER=<token> ./gradlew :logic:test
    systemProperty("jna.library.path", rootDir.resolve("../target/debug").absolutePath)
    systemProperty("onsite.samples", rootDir.resolve("../cli/samples/orders.json").absolutePath)
    systemProperty("onsite.server", System.getenv("ONSITE_SERVER") ?: "http://127.0.0.1:8080")
    systemProperty("onsite.dispatcher", System.getenv("ONSITE_DISPATCHER") ?: "")
}
