// The SwiftUI field app: order list (by SLA), order detail with the checklist, camera
// capture, the signature pad, and the sync bar. UI only: state lives in OnsiteAppLogic.
#if canImport(SwiftUI)
import Foundation
import Onsite
import OnsiteAppLogic
import SwiftUI

/// Bridges a logic-layer `Observed` value to SwiftUI, delivering on the main thread.
final class Live<Value>: ObservableObject {
    @Published private(set) var value: Value
    private var token: ObservationToken?

    init(_ observed: Observed<Value>) {
        value = observed.value
        token = observed.observe { [weak self] v in
            DispatchQueue.main.async { self?.value = v }
        }
    }
}

@main
struct OnsiteSampleApp: App {
    private let session: FieldSession

    init() {
        let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0].appendingPathComponent("onsite")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let platform = Platform(signer: SecureEnclaveSigner.loadOrCreate(), imageDecoder: ImageIODecoder(), location: CoreLocationProvider.shared, log: OSLogSink(), storeKey: KeychainStoreKey(), attestor: AppAttestor())
        do {
            session = try FieldSession(dataDir: dir.path, platform: platform)
        } catch {
            fatalError("cannot open the store: \(error)")
        }
    }

    var body: some Scene {
        WindowGroup {
            NavigationStack { OrderListView(session: session) }
        }
    }
}

struct OrderListView: View {
    let session: FieldSession
    @StateObject private var list: Live<OrderListState>

    init(session: FieldSession) {
        self.session = session
        _list = StateObject(wrappedValue: Live(session.orders.state))
    }

    var body: some View {
        List {
            Section { SyncBar(model: session.sync) }
            ForEach(list.value.rows, id: \.id) { row in
                NavigationLink(destination: OrderDetailView(model: session.detail(row.id))) {
                    VStack(alignment: .leading) {
                        Text(row.customer).font(.headline)
                        Text("\(row.equipment) · \(row.site)").font(.caption)
                        if let deadline = row.slaDeadline {
                            Text(deadline, style: .relative).foregroundColor(deadline < Date() ? .red : .secondary)
                        }
                    }
                }
            }
        }
        .navigationTitle("工单")
    }
}

struct SyncBar: View {
    let model: SyncModel
    @StateObject private var ui: Live<SyncUiState>
    @State private var code = ""
    private let server = ProcessInfo.processInfo.environment["ONSITE_SERVER"] ?? "http://127.0.0.1:8080"

    init(model: SyncModel) {
        self.model = model
        _ui = StateObject(wrappedValue: Live(model.state))
    }

    var body: some View {
        VStack(alignment: .leading) {
            if ui.value.state?.enrolled != true {
                TextField("Enrolment code", text: $code)
                Button("Enrol") { Task { _ = await model.enrol(serverUrl: server, code: code) } }
            } else if let s = ui.value.state {
                let pending = s.pendingJournal + s.pendingOrders + s.pendingPhotos
                Text(pending == 0 ? "All synced" : "\(pending) waiting to sync")
                if ui.value.running, let p = ui.value.progress { ProgressView(value: Double(p.done), total: Double(max(p.total, 1))) }
                Button("Sync now") { Task { _ = await model.syncNow() } }.disabled(ui.value.running)
            }
            if let e = ui.value.error { Text(e.message).foregroundColor(.red) }
        }
    }
}

struct OrderDetailView: View {
    let model: OrderDetailModel
    @StateObject private var ui: Live<OrderDetailState>
    @State private var signing = false

    init(model: OrderDetailModel) {
        self.model = model
        _ui = StateObject(wrappedValue: Live(model.state))
    }

    var body: some View {
        List {
            if let s = ui.value.screen {
                Section("\(s.detail.customer.company)") {
                    Text(s.detail.fault.description)
                    Text("Status: \(String(describing: s.detail.status))")
                    ForEach(s.detail.nextEvents, id: \.self) { event in
                        if let r = request(for: event) { Button(event) { model.transition(r) } }
                    }
                }
                if let c = s.checklist {
                    Section(c.title.zh) {
                        ForEach(c.steps, id: \.id) { step in
                            StepView(step: step, open: c.open.contains(step.id), model: model)
                        }
                    }
                } else {
                    Button("Start SOP checklist") { model.startChecklist() }
                }
                if s.blockers.contains(where: { $0.step == "receipt" }) { Button("Customer signs") { signing = true } }
                Text("\(s.photos.count) photos · \(s.receipts.count) receipt(s)")
            }
            if ui.value.busy { ProgressView() }
            if let e = ui.value.error { Text(e.message).foregroundColor(.red) }
        }
        .onAppear { model.refresh() }
        .sheet(isPresented: $signing) { SignatureView(model: model) }
    }

    private func request(for event: String) -> TransitionRequest? {
        switch event {
        case "accept": return .accept
        case "contact_customer": return .contactCustomer(window: TimeWindow(start: Date().addingTimeInterval(1800), end: Date().addingTimeInterval(9000)))
        case "depart": return .depart
        case "arrive": return .arrive
        case "start_work": return .startWork
        case "request_signature": return .requestSignature
        case "complete": return .complete
        default: return nil
        }
    }
}

struct StepView: View {
    let step: ChecklistStep
    let open: Bool
    let model: OrderDetailModel
    @State private var note = ""
    @State private var capturing = false

    var body: some View {
        VStack(alignment: .leading) {
            Text(step.label.zh)
            if open {
                switch step.kind {
                case .confirmation: Button("Done") { model.answer(step.id, .confirmed) }
                case .note:
                    TextField("Note", text: $note)
                    Button("Save") { model.answer(step.id, .note(text: note)) }
                case let .choice(options, _):
                    ForEach(options, id: \.id) { o in Button(o.label.zh) { model.answer(step.id, .choice(selected: [o.id])) } }
                case .photo:
                    Button("Take photo") { capturing = true }
                        .sheet(isPresented: $capturing) { CameraView(model: model, stepId: step.id) }
                default: Text("Answer on its own screen")
                }
            }
        }
    }
}

struct SignatureView: View {
    let model: OrderDetailModel
    @Environment(\.dismiss) private var dismiss
    @State private var pad = SignaturePad()
    @State private var lines: [[CGPoint]] = []
    @State private var name = ""

    var body: some View {
        VStack {
            TextField("Customer name", text: $name)
            Canvas { ctx, _ in
                for line in lines {
                    var p = Path()
                    p.addLines(line)
                    ctx.stroke(p, with: .color(.black), lineWidth: 3)
                }
            }
            .frame(height: 220)
            .background(Color.white)
            .gesture(DragGesture(minimumDistance: 0).onChanged { g in
                let t = Date().timeIntervalSinceReferenceDate
                if g.translation == .zero {
                    pad.down(x: Float(g.location.x), y: Float(g.location.y), time: t)
                    lines.append([g.location])
                } else {
                    pad.move(x: Float(g.location.x), y: Float(g.location.y), time: t)
                    lines[lines.count - 1].append(g.location)
                }
            })
            HStack {
                Button("Clear") { pad.clear(); lines = [] }
                Button("Sign") {
                    let request = ReceiptRequest(diagnosis: "", workDone: "", charges: [], currency: "CNY", rating: nil, ratingComment: nil,
                                                 signerName: name, decision: .signed(strokes: pad.value), correctionReason: nil)
                    if model.sign(request) != nil {
                        model.transition(.complete)
                        dismiss()
                    }
                }.disabled(name.isEmpty || pad.isEmpty)
            }
        }.padding()
    }
}
#else
/// SwiftUI is not available (Linux CI): the app target builds, the UI does not run.
@main
enum OnsiteSampleApp {
    static func main() {
        print("OnsiteSampleApp needs SwiftUI (iOS or macOS); the logic layer is OnsiteAppLogic.")
    }
}
#endif
