"""Starting a flow from a view (`:tasks` n, `:services` + and -): the form (kind, service, count,
IDC), checked as typed (the form again, as typed, with the reason on top), then checked against
the platform in a thread (the service, the IDC, enough containers to stop), then what will happen,
to confirm; then the flow is queued through the facade (audited, refused in read-only mode)."""

from __future__ import annotations

from collections.abc import Callable

from textual import work

from cockpit.engine.actions import Outcome
from cockpit.engine.facade_flows import FlowAsk
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.flow_rows import KINDS, parse_flow_form

TITLE = "Start a flow: scale a service out or in"


class FlowStarter:
    """Mixed into a ViewScreen that has `load()` (a read of the store) and `flow_started(ask,
    outcome)`, called on the loop once the facade answered (outcome.task: the new flow's id)."""

    def open_flow_form(self, values: dict[str, str], error: str = "") -> None:
        world = self.cockpit_app.cockpit.world  # type: ignore[attr-defined]
        fields = [
            Field("kind", "Kind: expand (scale out) or shrink (scale in)", values.get("kind", "expand"), KINDS),
            Field("service", "Service", values.get("service", ""), tuple(s.name for s in world.services)),
            Field("count", "Containers", values.get("count", "1")),
            Field("idc", "IDC (empty: where the service runs most)", values.get("idc", ""),
                  tuple(i.name for i in world.idcs), placeholder="where it runs most"),
        ]
        note = (f"✗ {error}\n" if error else "") + \
            "The engine runs the flow step by step (:tasks follows it); you confirm what it will do first."

        def chosen(answer: dict | None) -> None:
            if answer is not None:
                self._check_flow(answer)

        form = FormScreen(TITLE, fields, submit="Review…", note=note)
        self.cockpit_app.push_screen(form, callback=chosen)  # type: ignore[attr-defined]

    def _check_flow(self, values: dict[str, str]) -> None:
        try:
            req = parse_flow_form(values, self.cockpit_app.cockpit.world)  # type: ignore[attr-defined]
        except ValueError as e:
            self.open_flow_form(values, str(e))
            return
        self._ask_flow(values, req.kind, req.service, req.count, req.idc)

    @work(thread=True, group="flow-ask", exit_on_error=False, description="check a new flow")
    def _ask_flow(self, values: dict[str, str], kind: str, service: str, count: int, idc: str | None) -> None:
        try:
            ask = self.cockpit_app.cockpit.flow_ask(kind, service, count, idc)  # type: ignore[attr-defined]
        except Exception as e:  # a locked or damaged store: said in the form
            ask = FlowAsk(kind, service, count, idc, f"cannot check it: {type(e).__name__}: {e}")
        self.on_loop(self._flow_asked, values, ask)  # type: ignore[attr-defined]

    def _flow_asked(self, values: dict[str, str], ask: FlowAsk) -> None:
        if ask.problem is not None:
            self.open_flow_form(values, ask.problem)
            return
        c = self.cockpit_app.cockpit  # type: ignore[attr-defined]
        start = self.after_flow_action(lambda: c.start_flow(ask.kind, ask.service, ask.count, ask.idc),
                                       lambda outcome: self.flow_started(ask, outcome))  # type: ignore[attr-defined]
        self.cockpit_app.perform("flow.start", ask.text, start)  # type: ignore[attr-defined]

    def after_flow_action(self, do: Callable[[], Outcome],
                          then: Callable[[Outcome], None] | None = None) -> Callable[[], Outcome]:
        """`do` (a facade call, in a thread), then `then(outcome)` and a read of the store on the
        loop: the view shows the change without waiting for its next read."""

        def run() -> Outcome:
            outcome = None
            try:
                outcome = do()
                return outcome
            finally:
                if outcome is not None and then is not None:
                    self.on_loop(then, outcome)  # type: ignore[attr-defined]
                self.on_loop(self.load)  # type: ignore[attr-defined]
        return run
