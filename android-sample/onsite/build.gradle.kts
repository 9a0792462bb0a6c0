// The AAR an app team consumes: libonsite_ffi.so for arm64-v8a, armeabi-v7a and x86_64
// (built by scripts/build-rust.sh with cargo-ndk into src/main/jniLibs), JNA's Android AAR,
// and the generated bindings.
plugins {
    alias(libs.plugins.android.library)
    `maven-publish`
}

android {
    namespace = "com.kuaige.onsite"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].jniLibs.srcDir("src/main/jniLibs")
    publishing { singleVariant("release") }
}

dependencies {
    api(project(":bindings"))
    api("${libs.jna.get()}@aar")
    api(libs.kotlinx.coroutines.android)
}

afterEvaluate {
    publishing {
        publications {
            create<MavenPublication>("aar") {
                groupId = "com.kuaige.onsite"
                artifactId = "onsite"
                version = "0.1.0"
                from(components["release"])
            }
        }
    }
}
