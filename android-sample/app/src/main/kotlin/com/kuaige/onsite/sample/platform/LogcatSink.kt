package com.kuaige.onsite.sample.platform

import android.util.Log
import com.kuaige.onsite.LogLevel
import com.kuaige.onsite.LogRecord
import com.kuaige.onsite.LogSink

/** The core's tracing lines in Logcat, tagged by module (`adb logcat -s onsite_core:*`). */
class LogcatSink : LogSink {
    override fun log(record: LogRecord) {
        val tag = record.target.substringBefore("::").take(23)
        when (record.level) {
            LogLevel.ERROR -> Log.e(tag, record.message)
            LogLevel.WARN -> Log.w(tag, record.message)
            LogLevel.INFO -> Log.i(tag, record.message)
            LogLevel.DEBUG -> Log.d(tag, record.message)
            LogLevel.TRACE -> Log.v(tag, record.message)
        }
    }
}
