//! The table the bench prints.

use super::*;

/// The rows of the table, in order.
pub(super) struct Table {
    pub(super) rows: Vec<(String, Run)>,
}

impl Table {
    pub(super) fn print(&self, empty_grpc: f64, empty_http: Option<f64>) {
        println!(
            "{:<34} {:>10} {:>8} {:>8} {:>8} {:>9}",
            "operation", "calls/s", "of empty", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for (name, run) in &self.rows {
            let base = if ["HTTP", "AWS", "Huawei"]
                .iter()
                .any(|door| name.starts_with(door))
            {
                empty_http
            } else {
                Some(empty_grpc)
            };
            let share = base
                .map(|b| format!("{:.0} %", 100.0 * run.per_second() / b))
                .unwrap_or_default();
            println!(
                "{:<34} {:>10.0} {:>8} {:>8.2} {:>8.2} {:>9.2}",
                name,
                run.per_second(),
                share,
                run.percentile_ms(0.5),
                run.percentile_ms(0.99),
                run.percentile_ms(0.999)
            );
        }
    }
}
