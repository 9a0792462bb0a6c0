package com.kuaige.onsite.sample.logic

import com.kuaige.onsite.Enrolment
import com.kuaige.onsite.KeyAttestation
import com.kuaige.onsite.Onsite
import com.kuaige.onsite.SyncPhase
import com.kuaige.onsite.SyncProgressListener
import com.kuaige.onsite.SyncState
import com.kuaige.onsite.SyncSummary
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update

data class SyncProgress(val phase: SyncPhase, val done: ULong, val total: ULong)

data class SyncUiState(
    val state: SyncState? = null,
    val running: Boolean = false,
    val progress: SyncProgress? = null,
    val last: SyncSummary? = null,
    val error: UiError? = null,
)

/** The sync status bar: enrolment, a pass with progress, what is still pending. */
/**
 * The platform's proof that the device key lives in hardware, made for one enrolment: the
 * Android app's Keystore chain (its key generated with `challenge`), the iOS app's App
 * Attest object (over SHA-256 of `clientData`). `null`: this device has none.
 */
fun interface KeyAttestor {
    fun attest(challenge: ByteArray, clientData: ByteArray): KeyAttestation?
}

class SyncModel(private val onsite: Onsite, private val attestor: KeyAttestor? = null) {
    private val _state = MutableStateFlow(SyncUiState())
    val state: StateFlow<SyncUiState> = _state.asStateFlow()

    fun refresh() {
        try {
            val s = onsite.sync().state()
            _state.update { it.copy(state = s) }
        } catch (e: Exception) {
            _state.update { it.copy(error = e.toUiError()) }
        }
    }

    suspend fun enrol(serverUrl: String, code: String): Enrolment? = try {
        val c = code.trim().uppercase()
        // An attestor that fails leaves the enrolment unattested; the server's policy decides.
        val attestation = attestor?.let { a ->
            runCatching { a.attest(onsite.sync().attestationChallenge(c), onsite.sync().appAttestClientData(c)) }.getOrNull()
        }
        onsite.sync().enrol(serverUrl.trimEnd('/'), c, attestation = attestation).also { refresh() }
    } catch (e: kotlinx.coroutines.CancellationException) {
        throw e
    } catch (e: Exception) {
        _state.update { it.copy(error = e.toUiError()) }
        null
    }

    /** One pass; cancel the calling coroutine to stop it (the next pass resumes). */
    suspend fun syncNow(): SyncSummary? {
        _state.update { it.copy(running = true, progress = null, error = null) }
        val listener = object : SyncProgressListener {
            override fun onProgress(phase: SyncPhase, done: ULong, total: ULong) {
                _state.update { it.copy(progress = SyncProgress(phase, done, total)) }
            }
        }
        return try {
            onsite.sync().run(listener).also { summary -> _state.update { it.copy(last = summary) } }
        } catch (e: kotlinx.coroutines.CancellationException) {
            throw e
        } catch (e: Exception) {
            _state.update { it.copy(error = e.toUiError()) }
            null
        } finally {
            _state.update { it.copy(running = false) }
            refresh()
        }
    }
}
