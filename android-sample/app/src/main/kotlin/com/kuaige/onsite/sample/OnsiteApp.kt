package com.kuaige.onsite.sample

import android.app.Application
import com.kuaige.onsite.LogLevel
import com.kuaige.onsite.enrolmentAttestationChallenge
import com.kuaige.onsite.sample.logic.FieldSession
import com.kuaige.onsite.sample.logic.Platform
import com.kuaige.onsite.sample.platform.CachedLocation
import com.kuaige.onsite.sample.platform.KeystoreSigner
import com.kuaige.onsite.sample.platform.KeystoreStoreKey
import com.kuaige.onsite.sample.platform.LogcatSink
import com.kuaige.onsite.sample.platform.PlatformImageDecoder

/**
 * One FieldSession for the process: the store is opened once, in the app's private files,
 * encrypted with a Keystore-wrapped key. On first run there is no device key yet: it is made
 * when the engineer enters the enrolment code, with that enrolment's attestation challenge.
 */
class OnsiteApp : Application() {
    lateinit var session: FieldSession
        private set
    lateinit var location: CachedLocation
        private set

    /** False on first run, until [openForEnrolment]. */
    val ready: Boolean get() = ::session.isInitialized

    override fun onCreate() {
        super.onCreate()
        location = CachedLocation(this)
        if (KeystoreSigner.exists()) open(KeystoreSigner.getOrCreate())
    }

    /** First run: makes the device key for the enrolment with `code`, then opens the store. */
    fun openForEnrolment(code: String): FieldSession {
        if (!ready) open(KeystoreSigner.getOrCreate(enrolmentAttestationChallenge(code.trim().uppercase())))
        return session
    }

    private fun open(signer: KeystoreSigner) {
        session = FieldSession.open(
            filesDir.resolve("onsite").absolutePath,
            Platform(
                signer = signer,
                storeKey = KeystoreStoreKey(this),
                attestor = signer.attestor,
                imageDecoder = PlatformImageDecoder(),
                location = location,
                log = LogcatSink(),
                logLevel = LogLevel.INFO,
            ),
        )
    }
}
