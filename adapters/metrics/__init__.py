"""metrics-adapter: StatsD, JMX (Jolokia) and app stats in, one Prometheus /metrics out."""
