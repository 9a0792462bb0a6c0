package com.kuaige.onsite.sample

import android.app.Application
import com.kuaige.onsite.LogLevel
import com.kuaige.onsite.sample.logic.FieldSession
import com.kuaige.onsite.sample.logic.Platform
import com.kuaige.onsite.sample.platform.CachedLocation
import com.kuaige.onsite.sample.platform.KeystoreSigner
import com.kuaige.onsite.sample.platform.KeystoreStoreKey
import com.kuaige.onsite.sample.platform.LogcatSink
import com.kuaige.onsite.sample.platform.PlatformImageDecoder

/** One FieldSession for the process: the store is opened once, in the app's private files. */
class OnsiteApp : Application() {
    lateinit var session: FieldSession
        private set
    lateinit var location: CachedLocation
        private set

    override fun onCreate() {
        super.onCreate()
        location = CachedLocation(this)
        session = FieldSession.open(
            filesDir.resolve("onsite").absolutePath,
            Platform(signer = KeystoreSigner.getOrCreate(), storeKey = KeystoreStoreKey(this), imageDecoder = PlatformImageDecoder(), location = location, log = LogcatSink(), logLevel = LogLevel.INFO),
        )
    }
}
