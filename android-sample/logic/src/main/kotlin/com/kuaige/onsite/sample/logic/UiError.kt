package com.kuaige.onsite.sample.logic

import com.kuaige.onsite.ApiException
import com.kuaige.onsite.KeyProblem

/** What a screen shows for a failed action, and what the engineer can do about it. */
data class UiError(val message: String, val action: Action, val field: String? = null) {
    enum class Action { NONE, RETRY, FIX_INPUT, ENROL_AGAIN, REOPEN, UPDATE_APP }
}

/** One place that turns the core's typed errors into words and actions. */
fun Throwable.toUiError(): UiError = when (this) {
    is ApiException.NotFound -> UiError("Not found: $id", UiError.Action.NONE)
    is ApiException.InvalidInput -> UiError("Check $field: $reason", UiError.Action.FIX_INPUT, field)
    is ApiException.IllegalTransition -> UiError("Not possible while the order is ${from.name.lowercase()}", UiError.Action.NONE)
    is ApiException.Blocked -> UiError("$count checklist step(s) still open, first: $firstStep", UiError.Action.FIX_INPUT, firstStep)
    is ApiException.StepRefused -> UiError("Step $step: $reason", UiError.Action.FIX_INPUT, step)
    is ApiException.NotPermitted -> UiError(reason, UiError.Action.NONE)
    is ApiException.Conflict -> UiError(reason, UiError.Action.RETRY)
    is ApiException.Network -> UiError("No connection to the server; your work is saved and will be sent later", UiError.Action.RETRY)
    is ApiException.Unauthorized -> UiError("This phone must be enrolled again: ask the dispatcher for a code", UiError.Action.ENROL_AGAIN)
    is ApiException.DatabaseTooNew -> UiError("This data was written by a newer app version", UiError.Action.UPDATE_APP)
    is ApiException.Corrupt, is ApiException.Storage -> UiError("Storage problem: ${message ?: ""}", UiError.Action.RETRY)
    is ApiException.Closed -> UiError("The store was closed", UiError.Action.REOPEN)
    is ApiException.StoreKey -> when (problem) {
        KeyProblem.UNAVAILABLE -> UiError("Unlock the phone to open the app's data", UiError.Action.RETRY)
        KeyProblem.WRONG, KeyProblem.MISSING -> UiError("This phone's data cannot be opened with its key: sync what you can and enrol again", UiError.Action.ENROL_AGAIN)
    }
    is ApiException.Cancelled -> UiError("Cancelled", UiError.Action.NONE)
    is ApiException -> UiError(message ?: "Unexpected error", UiError.Action.RETRY)
    else -> UiError(message ?: toString(), UiError.Action.RETRY)
}
