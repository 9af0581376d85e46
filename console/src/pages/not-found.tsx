import { Button, Empty } from "../components/ui";
import { navigate } from "../lib/router";

export function NotFound() {
  return (
    <div class="page">
      <Empty icon="alert" title="Page not found" action={<Button variant="primary" onClick={() => navigate("playground/image")}>Go to the playground</Button>}>
        There is nothing at this address in the console.
      </Empty>
    </div>
  );
}
