//! Text labels beside markers that never pile up: each new label takes the first free spot near its point (a line
//! down or up) or is left out; the point's hover text still carries it.

/// Where a panel's labels are, so that none is drawn over another: a label moves a line down or up, or is left out.
#[derive(Default)]
pub(super) struct Labels(Vec<(i32, i32)>);

impl Labels {
    pub(super) fn place(&mut self, at: (i32, i32)) -> Option<(i32, i32)> {
        let free = |p: (i32, i32), taken: &[(i32, i32)]| {
            taken
                .iter()
                .all(|q| (p.0 - q.0).abs() > 34 || (p.1 - q.1).abs() > 13)
        };
        let spot = [0, 14, -14, 28]
            .into_iter()
            .map(|dy| (at.0, at.1 + dy))
            .find(|p| free(*p, &self.0))?;
        self.0.push(spot);
        Some(spot)
    }
}

#[cfg(test)]
mod tests {
    use super::Labels;

    #[test]
    fn a_label_moves_off_another_or_is_left_out() {
        let mut l = Labels::default();
        assert_eq!(l.place((100, 100)), Some((100, 100)));
        assert_eq!(l.place((105, 102)), Some((105, 116)));
        // A line up would still touch the first (12 px apart): two lines down instead.
        assert_eq!(l.place((105, 102)), Some((105, 130)));
        assert_eq!(l.place((105, 102)), None);
        assert_eq!(l.place((300, 100)), Some((300, 100)));
    }
}
