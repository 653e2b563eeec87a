"""Send-side congestion control, pure: transport-wide feedback, the delay-based, loss-based and
probing estimators, and the controller that combines them (with REMB as the fallback)."""
