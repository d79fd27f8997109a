"""Autoscaling, decided: what each rule recommends for a service now, the HPA's arithmetic, the
decision that combines them within the pool's limits, and a day replayed against baselines.
Pure: the engine and `cockpit simulate` feed it observations and keep its memory."""
