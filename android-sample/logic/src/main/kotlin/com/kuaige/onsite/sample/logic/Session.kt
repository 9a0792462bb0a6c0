package com.kuaige.onsite.sample.logic

import com.kuaige.onsite.ChangeOrigin
import com.kuaige.onsite.ClockSource
import com.kuaige.onsite.DeviceSigner
import com.kuaige.onsite.ImageDecoder
import com.kuaige.onsite.LocationProvider
import com.kuaige.onsite.LogSink
import com.kuaige.onsite.LogLevel
import com.kuaige.onsite.Onsite
import com.kuaige.onsite.OrderChangeListener
import com.kuaige.onsite.StoreKeyProvider
import com.kuaige.onsite.setLogSink
import java.util.concurrent.ConcurrentHashMap
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.asSharedFlow

/**
 * What only the platform has: on Android a Keystore signer, FusedLocation, Logcat, and the
 * platform's image codecs for HEIC/AVIF photos.
 */
data class Platform(
    val signer: DeviceSigner? = null,
    val imageDecoder: ImageDecoder? = null,
    val location: LocationProvider? = null,
    val log: LogSink? = null,
    val logLevel: LogLevel = LogLevel.INFO,
    val clock: ClockSource? = null,
    /** The store's encryption key (the app: wrapped by an Android Keystore key). */
    val storeKey: StoreKeyProvider? = null,
    /** The Keystore's attestation of the device key, sent with the enrolment. */
    val attestor: KeyAttestor? = null,
)

/**
 * The app's one handle on the core: opens the store, owns the screen models, and routes the
 * core's change notifications to them, so a list or detail screen refreshes after a local
 * edit or a merge from sync without polling.
 */
class FieldSession private constructor(val onsite: Onsite, attestor: KeyAttestor?) : AutoCloseable {
    val orders = OrderListModel(onsite)
    val sync = SyncModel(onsite, attestor)
    private val details = ConcurrentHashMap<String, OrderDetailModel>()
    private val _changes = MutableSharedFlow<List<String>>(extraBufferCapacity = 64)

    /** Order ids as they change (for a badge, a toast, or tests). */
    val changes: SharedFlow<List<String>> = _changes.asSharedFlow()

    private val subscription = onsite.subscribe(object : OrderChangeListener {
        override fun onOrdersChanged(orderIds: List<String>, origin: ChangeOrigin) {
            // Called on the thread that made the change; the models' StateFlows are thread-safe.
            orders.refresh()
            orderIds.forEach { details[it]?.refresh() }
            if (origin == ChangeOrigin.REMOTE) sync.refresh()
            _changes.tryEmit(orderIds)
        }
    })

    /** The detail screen's model, one per order while the session lives. */
    fun detail(orderId: String): OrderDetailModel = details.getOrPut(orderId) { OrderDetailModel(onsite, orderId) }

    override fun close() {
        subscription.cancel()
        subscription.close()
        onsite.close()
    }

    companion object {
        fun open(dataDir: String, platform: Platform = Platform()): FieldSession {
            platform.log?.let { setLogSink(it, platform.logLevel) }
            val onsite = Onsite.openWithPlatform(dataDir, platform.clock, platform.signer, platform.location, platform.storeKey)
            platform.imageDecoder?.let { onsite.setImageDecoder(it) }
            return FieldSession(onsite, platform.attestor).also { it.orders.refresh(); it.sync.refresh() }
        }
    }
}
