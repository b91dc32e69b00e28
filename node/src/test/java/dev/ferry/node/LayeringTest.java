package dev.ferry.node;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaCall;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.domain.properties.HasName;
import com.tngtech.archunit.core.domain.properties.HasOwner;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/** The ports and adapters layering, checked on the compiled classes. */
class LayeringTest {
  private static final JavaClasses MAIN =
      new ClassFileImporter()
          .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
          .importPackages("dev.ferry");

  @Test
  void onlyTheLibvirtAdapterTouchesLibvirtAndJna() {
    noClasses()
        .that()
        .resideOutsideOfPackage("dev.ferry.node.libvirt..")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage("org.libvirt..", "com.sun.jna..")
        .check(MAIN);
  }

  @Test
  void onlyTheProcessPackageStartsProcesses() {
    noClasses()
        .that()
        .resideOutsideOfPackage("dev.ferry.node.process..")
        .should()
        .dependOnClassesThat()
        .areAssignableTo(ProcessBuilder.class)
        .orShould()
        .callMethodWhere(
            JavaCall.Predicates.target(
                    HasOwner.Predicates.With.owner(
                        JavaClass.Predicates.assignableTo(Runtime.class)))
                .and(JavaCall.Predicates.target(HasName.Predicates.name("exec"))))
        .check(MAIN);
  }

  @Test
  void theSchedulerTalksToHostsOnlyThroughAgents() {
    // it runs on whichever member holds the singleton: host work is always an agent's
    noClasses()
        .that()
        .resideInAPackage("dev.ferry.node.scheduler..")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage(
            "dev.ferry.node.libvirt..",
            "dev.ferry.node.process..",
            "dev.ferry.node.migration..",
            "dev.ferry.node.disksync..",
            "dev.ferry.node.image..")
        .check(MAIN);
  }

  @Test
  void protocolDependsOnNothingOfOurs() {
    noClasses()
        .that()
        .resideInAPackage("dev.ferry.protocol..")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage("dev.ferry.node..", "dev.ferry.api..")
        .allowEmptyShould(true)
        .check(MAIN);
  }
}
