package com.kuaige.onsite.sample.logic

import com.kuaige.onsite.Onsite
import com.kuaige.onsite.OrderFilter
import com.kuaige.onsite.OrderStatus
import com.kuaige.onsite.OrderSummary
import com.kuaige.onsite.SortBy
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update

data class OrderListState(
    val rows: List<OrderSummary> = emptyList(),
    /** Empty: every status. */
    val statuses: List<OrderStatus> = emptyList(),
    val error: UiError? = null,
)

/** The order list, sorted by the next SLA deadline (one FFI call per refresh: summary rows). */
class OrderListModel(private val onsite: Onsite) {
    private val _state = MutableStateFlow(OrderListState())
    val state: StateFlow<OrderListState> = _state.asStateFlow()

    fun refresh() {
        val statuses = _state.value.statuses
        try {
            val rows = onsite.orders().list(OrderFilter(statuses, SortBy.SLA_DEADLINE))
            _state.update { it.copy(rows = rows, error = null) }
        } catch (e: Exception) {
            _state.update { it.copy(error = e.toUiError()) }
        }
    }

    fun showOnly(statuses: List<OrderStatus>) {
        _state.update { it.copy(statuses = statuses) }
        refresh()
    }
}
