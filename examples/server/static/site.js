// Gopher Club: a form that leads to Stripe (Checkout, the Customer Portal;
// marked data-redirect) disables the page's Stripe buttons while the
// browser is on its way, and the clicked one says so: a second click
// starts nothing twice.
"use strict";
document.addEventListener("submit", function (event) {
	if (event.defaultPrevented || !event.target.matches("form[data-redirect]")) return;
	var clicked = event.submitter || event.target.querySelector("button");
	document.querySelectorAll("form[data-redirect] button").forEach(function (b) { b.disabled = true; });
	if (clicked) {
		clicked.dataset.label = clicked.textContent;
		clicked.textContent = "Redirecting to Stripe…";
	}
});
// Back from Stripe, a page the browser kept (the back-forward cache) gets
// its buttons back.
window.addEventListener("pageshow", function (event) {
	if (!event.persisted) return;
	document.querySelectorAll("form[data-redirect] button").forEach(function (b) {
		b.disabled = false;
		if (b.dataset.label) {
			b.textContent = b.dataset.label;
			delete b.dataset.label;
		}
	});
});
