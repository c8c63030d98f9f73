//! The table the bench prints.

use super::*;

/// The rows of the table, in order.
pub(super) struct Table {
    pub(super) rows: Vec<(String, Run)>,
}

impl Table {
    /// `empty_grpc`: aliasd's Ping; `bare`: the bare tonic server's empty
    /// call (gRPC rows show their share of both); `empty_http`: the HTTP
    /// door's `/ping`.
    pub(super) fn print(&self, empty_grpc: f64, bare: f64, empty_http: Option<f64>) {
        println!(
            "{:<34} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "operation", "calls/s", "of empty", "of bare", "p50 ms", "p99 ms", "p99.9 ms"
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
            let of_bare = match base == Some(empty_grpc) {
                true => format!("{:.0} %", 100.0 * run.per_second() / bare),
                false => String::new(),
            };
            println!(
                "{:<34} {:>10.0} {:>8} {:>8} {:>8.2} {:>8.2} {:>9.2}",
                name,
                run.per_second(),
                share,
                of_bare,
                run.percentile_ms(0.5),
                run.percentile_ms(0.99),
                run.percentile_ms(0.999)
            );
        }
    }
}
