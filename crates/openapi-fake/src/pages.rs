//! Page-number pagination as the APIs answer lists: `page` (from 1) and
//! `per_page` from the query, and the one page of the items they select.

/// Where a page stands in a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// The page asked for (1 when absent or not a number).
    pub number: usize,
    /// Items per page (`default` when absent, clamped to `1..=max`).
    pub per_page: usize,
    /// The last page (1 for an empty list).
    pub last: usize,
    /// Items in the whole list.
    pub total: usize,
}

impl Page {
    /// The page `query` asks for of `items`, and that page's items.
    pub fn of<T>(
        query: &[(String, String)],
        default_per_page: usize,
        max_per_page: usize,
        items: Vec<T>,
    ) -> (Page, Vec<T>) {
        let number_of = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key == name)
                .and_then(|(_, value)| value.parse::<usize>().ok())
        };
        let per_page = number_of("per_page")
            .unwrap_or(default_per_page)
            .clamp(1, max_per_page);
        let number = number_of("page").unwrap_or(1).max(1);
        let total = items.len();
        let page = Page {
            number,
            per_page,
            last: total.div_ceil(per_page).max(1),
            total,
        };
        let slice = items
            .into_iter()
            .skip((number - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        (page, slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn pages_are_selected_and_bounded() {
        let items: Vec<u32> = (1..=5).collect();
        let (page, slice) = Page::of(
            &query(&[("per_page", "2"), ("page", "3")]),
            30,
            100,
            items.clone(),
        );
        assert_eq!(slice, [5]);
        assert_eq!(
            (page.number, page.per_page, page.last, page.total),
            (3, 2, 3, 5)
        );
        let (page, slice) = Page::of(
            &query(&[("per_page", "0"), ("page", "x")]),
            30,
            100,
            items.clone(),
        );
        assert_eq!((page.number, page.per_page, slice.len()), (1, 1, 1));
        let (page, slice) = Page::of(&[], 30, 100, Vec::<u32>::new());
        assert_eq!((page.last, slice.len()), (1, 0));
        let (_, slice) = Page::of(&query(&[("page", &usize::MAX.to_string())]), 2, 100, items);
        assert!(slice.is_empty());
    }
}
