// The uniffi-generated Kotlin (package com.kuaige.onsite), produced by
// scripts/build-rust.sh into build/generated/uniffi. JNA is compileOnly: Android takes it from
// JNA's AAR (in :onsite), JVM tests from the jar.
plugins {
    alias(libs.plugins.kotlin.jvm)
    `maven-publish`
}

kotlin { jvmToolchain(17) }

sourceSets["main"].kotlin.srcDir(layout.buildDirectory.dir("generated/uniffi"))

dependencies {
    compileOnly(libs.jna)
    api(libs.kotlinx.coroutines.core)
}

publishing {
    publications {
        create<MavenPublication>("bindings") {
            groupId = "com.kuaige.onsite"
            artifactId = "onsite-bindings"
            version = "0.1.0"
            from(components["java"])
        }
    }
}
