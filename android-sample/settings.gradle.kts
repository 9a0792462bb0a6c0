// Onsite Android sample: a Compose field app over the Rust core.
//   :bindings  generated Kotlin (uniffi), plain JVM module (JNA is provided by the runtime)
//   :onsite    Android library (the AAR): the .so for each ABI + JNA's AAR + :bindings
//   :logic     UI-independent state holders (plain Kotlin; tested on the JVM here)
//   :app       the Compose app (screens, CameraX, signature pad, Keystore signer)
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "onsite-android-sample"
include(":bindings", ":onsite", ":logic", ":app")
