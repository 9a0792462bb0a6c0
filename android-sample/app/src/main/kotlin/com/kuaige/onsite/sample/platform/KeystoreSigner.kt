package com.kuaige.onsite.sample.platform

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import com.kuaige.onsite.ApiException
import com.kuaige.onsite.DeviceSigner
import com.kuaige.onsite.KeyAttestation
import com.kuaige.onsite.sample.logic.KeyAttestor
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.PrivateKey
import java.security.Signature
import java.security.interfaces.ECPublicKey

/**
 * The device key in Android Keystore (StrongBox when the phone has one): P-256, signing
 * only, never exportable. The core gets the public key and DER ES256 signatures.
 *
 * Made when the engineer enrols (first run), with the enrolment's attestation challenge
 * (`enrolmentAttestationChallenge(code)`), so its Key Attestation chain proves to the server
 * that this key, for this enrolment, lives in the TEE or StrongBox (docs/adr/0019).
 */
class KeystoreSigner private constructor(private val alias: String) : DeviceSigner {
    private val keyStore = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }

    override fun publicKey(): ByteArray {
        val pub = keyStore.getCertificate(alias).publicKey as ECPublicKey
        fun fixed(b: java.math.BigInteger): ByteArray {
            val raw = b.toByteArray().dropWhile { it == 0.toByte() }.toByteArray()
            return ByteArray(32 - raw.size) + raw
        }
        return byteArrayOf(4) + fixed(pub.w.affineX) + fixed(pub.w.affineY)
    }

    override fun sign(message: ByteArray): ByteArray = try {
        val key = keyStore.getKey(alias, null) as PrivateKey
        Signature.getInstance("SHA256withECDSA").run {
            initSign(key)
            update(message)
            sign()
        }
    } catch (e: Exception) {
        throw ApiException.Internal("keystore signing failed: ${e.message}")
    }

    /** The Keystore's attestation chain of this key (leaf first), for the enrolment. */
    val attestor = KeyAttestor { _, _ ->
        val chain = keyStore.getCertificateChain(alias)?.map { it.encoded }
        // A single self-signed certificate: the key was made without attestation.
        if (chain == null || chain.size < 2) null else KeyAttestation.AndroidKeyChain(chain)
    }

    companion object {
        private const val ALIAS = "onsite-device-key"

        fun exists(): Boolean = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }.containsAlias(ALIAS)

        /** The key, made now if missing; `attestationChallenge` binds its attestation to an enrolment. */
        fun getOrCreate(attestationChallenge: ByteArray? = null): KeystoreSigner {
            val ks = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
            if (!ks.containsAlias(ALIAS)) {
                fun generate(strongBox: Boolean) {
                    val spec = KeyGenParameterSpec.Builder(ALIAS, KeyProperties.PURPOSE_SIGN)
                        .setAlgorithmParameterSpec(java.security.spec.ECGenParameterSpec("secp256r1"))
                        .setDigests(KeyProperties.DIGEST_SHA256)
                        .setIsStrongBoxBacked(strongBox)
                        .apply { attestationChallenge?.let { setAttestationChallenge(it) } }
                        .build()
                    KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, "AndroidKeyStore").apply { initialize(spec) }.generateKeyPair()
                }
                try {
                    generate(strongBox = true)
                } catch (e: StrongBoxUnavailableException) {
                    generate(strongBox = false)
                }
            }
            return KeystoreSigner(ALIAS)
        }
    }
}
