package com.kuaige.onsite.sample.logic

import com.kuaige.onsite.BundleExport
import com.kuaige.onsite.BundleReport
import com.kuaige.onsite.GpsFix
import com.kuaige.onsite.IngestReport
import com.kuaige.onsite.Onsite
import com.kuaige.onsite.OrderScreen
import com.kuaige.onsite.PhotoRef
import com.kuaige.onsite.ReceiptRequest
import com.kuaige.onsite.SignedReceiptInfo
import com.kuaige.onsite.StepAnswer
import com.kuaige.onsite.StepKind
import com.kuaige.onsite.TransitionRequest
import com.kuaige.onsite.verifyBundle
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update

data class OrderDetailState(
    val screen: OrderScreen? = null,
    /** A photo is being stored or a bundle written (show a spinner, keep the screen usable). */
    val busy: Boolean = false,
    val error: UiError? = null,
)

/**
 * The detail screen: the order, its checklist, photos and receipts in one record, and the
 * engineer's actions on it. Each action is one FFI call; the screen record comes back from
 * the core's change notification (or from the action's result).
 */
class OrderDetailModel(private val onsite: Onsite, val orderId: String) {
    private val _state = MutableStateFlow(OrderDetailState())
    val state: StateFlow<OrderDetailState> = _state.asStateFlow()

    fun refresh() {
        try {
            val screen = onsite.orders().screen(orderId)
            _state.update { it.copy(screen = screen, error = null) }
        } catch (e: Exception) {
            _state.update { it.copy(error = e.toUiError()) }
        }
    }

    private inline fun <T> act(block: () -> T): T? = try {
        block().also { _state.update { s -> s.copy(error = null) } }
    } catch (e: Exception) {
        _state.update { it.copy(error = e.toUiError()) }
        null
    }

    private suspend fun <T> actAsync(block: suspend () -> T): T? {
        _state.update { it.copy(busy = true) }
        return try {
            block().also { _state.update { s -> s.copy(error = null) } }
        } catch (e: kotlinx.coroutines.CancellationException) {
            throw e
        } catch (e: Exception) {
            _state.update { it.copy(error = e.toUiError()) }
            null
        } finally {
            _state.update { it.copy(busy = false) }
        }
    }

    /** A lifecycle button (accept, depart, arrive, ...). Returns false when refused. */
    fun transition(request: TransitionRequest, fix: GpsFix? = null): Boolean =
        act { onsite.orders().transition(orderId, request, fix) } != null

    fun addNote(text: String): Boolean = act { onsite.orders().addNote(orderId, text) } != null

    fun startChecklist(templateId: String = "onsite-repair"): Boolean = act { onsite.checklist().start(orderId, templateId) } != null

    fun answer(stepId: String, answer: StepAnswer): Boolean = act { onsite.checklist().answer(orderId, stepId, answer) } != null

    fun markNotApplicable(stepId: String, reason: String): Boolean =
        act { onsite.checklist().markNotApplicable(orderId, stepId, reason) } != null

    /**
     * A camera capture for a photo step: stored as evidence off the main thread, and once the
     * step has its minimum number of photos, the step is answered with them.
     */
    suspend fun capturePhoto(stepId: String?, jpeg: ByteArray, fix: GpsFix? = null): IngestReport? = actAsync {
        val report = onsite.evidence().ingestBytes(orderId, stepId, jpeg, fix)
        if (stepId != null) {
            val view = onsite.checklist().view(orderId)
            val step = view.steps.firstOrNull { it.id == stepId }
            val kind = step?.kind
            if (kind is StepKind.Photo && stepId in view.open) {
                val taken = onsite.evidence().photos(orderId).filter { it.step == stepId }
                if (taken.size.toUInt() >= maxOf(1u, kind.min)) {
                    onsite.checklist().answer(orderId, stepId, StepAnswer.Photos(taken.map { PhotoRef(it.sha256, stepId) }))
                }
            }
        }
        report
    }

    fun sign(request: ReceiptRequest): SignedReceiptInfo? = act { onsite.receipts().sign(orderId, request) }

    /** Writes the arbitration bundle and checks it as a third party would. */
    suspend fun exportBundle(path: String, thumbnailsOnly: Boolean = false): Pair<BundleExport, BundleReport>? = actAsync {
        val export = onsite.receipts().exportBundle(orderId, path, thumbnailsOnly)
        export to verifyBundle(export.path, onsite.publicKey())
    }
}
