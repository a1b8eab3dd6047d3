package main

import (
	"strings"

	"github.com/rivo/uniseg"
)

// utf8Table draws a table as cfsctl does (comfy-table's UTF8_FULL preset):
// box-drawing borders, a double line under the header, dotted lines
// between rows, one space of padding on each side of a cell.
func utf8Table(header []string, rows [][]string) string {
	widths := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, cell := range row {
			widths[i] = max(widths[i], uniseg.StringWidth(cell))
		}
	}
	var b strings.Builder
	line := func(left, fill, mid, right string) {
		b.WriteString(left)
		for i, w := range widths {
			if i > 0 {
				b.WriteString(mid)
			}
			b.WriteString(strings.Repeat(fill, w+2))
		}
		b.WriteString(right + "\n")
	}
	cells := func(row []string) {
		b.WriteString("│")
		for i, w := range widths {
			if i > 0 {
				b.WriteString("┆")
			}
			b.WriteString(" " + row[i] + strings.Repeat(" ", w-uniseg.StringWidth(row[i])) + " ")
		}
		b.WriteString("│\n")
	}
	line("┌", "─", "┬", "┐")
	cells(header)
	line("╞", "═", "╪", "╡")
	for i, row := range rows {
		if i > 0 {
			line("├", "╌", "┼", "┤")
		}
		cells(row)
	}
	line("└", "─", "┴", "┘")
	return b.String()
}
